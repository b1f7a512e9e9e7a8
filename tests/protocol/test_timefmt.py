from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, strategies as st

from agentim.protocol.timefmt import iso_from_epoch_ms, iso_now, parse_js_date, to_iso

ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
# Python's datetime range in epoch milliseconds.
MIN_MS = -62135596800000
MAX_MS = 253402300799999


def test_to_iso_matches_js_to_iso_string() -> None:
    dt = datetime(2025, 2, 14, 9, 3, 27, 123456, tzinfo=UTC)
    assert to_iso(dt) == "2025-02-14T09:03:27.123Z"


def test_to_iso_truncates_microseconds() -> None:
    assert to_iso(datetime(2025, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)) == "2025-01-01T00:00:00.999Z"


def test_to_iso_converts_to_utc() -> None:
    dt = datetime(2025, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert to_iso(dt) == "2024-12-31T23:30:00.000Z"


def test_to_iso_takes_naive_as_utc() -> None:
    assert to_iso(datetime(2025, 1, 1)) == "2025-01-01T00:00:00.000Z"


def test_to_iso_pads_small_years() -> None:
    assert to_iso(datetime(5, 1, 2, tzinfo=UTC)) == "0005-01-02T00:00:00.000Z"


def test_iso_now_format() -> None:
    assert ISO.fullmatch(iso_now())


def test_iso_from_epoch_ms() -> None:
    assert iso_from_epoch_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_from_epoch_ms(1739523807123) == "2025-02-14T09:03:27.123Z"
    assert iso_from_epoch_ms(-1) == "1969-12-31T23:59:59.999Z"


@given(st.integers(min_value=MIN_MS, max_value=MAX_MS))
def test_epoch_ms_round_trip(ms: int) -> None:
    text = iso_from_epoch_ms(ms)
    assert ISO.fullmatch(text)
    parsed = parse_js_date(text)
    assert parsed is not None
    assert round((parsed - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1)) == ms
    assert to_iso(parsed) == text


@given(st.integers(min_value=MIN_MS, max_value=MAX_MS), st.integers(0, 10**8))
def test_string_order_is_time_order(a: int, gap: int) -> None:
    b = min(a + gap, MAX_MS)
    assert (iso_from_epoch_ms(a) <= iso_from_epoch_ms(b)) == (a <= b)


def parsed_iso(text: str) -> str | None:
    dt = parse_js_date(text)
    return None if dt is None else to_iso(dt)


def test_parse_iso_forms() -> None:
    assert parsed_iso("2025-02-14") == "2025-02-14T00:00:00.000Z"
    assert parsed_iso("2025-02") == "2025-02-01T00:00:00.000Z"
    assert parsed_iso("2025") == "2025-01-01T00:00:00.000Z"
    assert parsed_iso("2025-02-14T09:03") == "2025-02-14T09:03:00.000Z"
    assert parsed_iso("2025-02-14T09:03:27") == "2025-02-14T09:03:27.000Z"
    assert parsed_iso("2025-02-14T09:03:27.5Z") == "2025-02-14T09:03:27.500Z"
    assert parsed_iso("2025-02-14T09:03:27.123456Z") == "2025-02-14T09:03:27.123Z"
    assert parsed_iso("2025-02-14 09:03:27Z") == "2025-02-14T09:03:27.000Z"
    assert parsed_iso("+002025-02-14T00:00:00Z") == "2025-02-14T00:00:00.000Z"


def test_parse_applies_offsets() -> None:
    assert parsed_iso("2025-02-14T09:03:27+01:00") == "2025-02-14T08:03:27.000Z"
    assert parsed_iso("2025-02-14T00:30:00-0130") == "2025-02-14T02:00:00.000Z"


def test_parse_rolls_day_over_like_v8() -> None:
    assert parsed_iso("2021-02-31") == "2021-03-03T00:00:00.000Z"
    assert parsed_iso("2025-02-14T24:00:00Z") == "2025-02-15T00:00:00.000Z"


def test_parse_legacy_forms() -> None:
    assert parsed_iso("Tue, 14 Feb 2025 09:03:27 GMT") == "2025-02-14T09:03:27.000Z"
    text = "Fri Feb 14 2025 09:03:27 GMT+0100 (Central European Standard Time)"
    assert parsed_iso(text) == "2025-02-14T08:03:27.000Z"
    assert parsed_iso("Feb 14, 2025") == "2025-02-14T00:00:00.000Z"
    assert parsed_iso("2025/2/14") == "2025-02-14T00:00:00.000Z"
    assert parsed_iso("2/14/2025 10:00") == "2025-02-14T10:00:00.000Z"


def test_parse_rejects_invalid() -> None:
    invalid = [
        "",
        "   ",
        "hello",
        "2025-13-01",
        "2025-00-10",
        "2025-01-32",
        "2025-01-01T25:00:00Z",
        "2025-01-01T24:00:01Z",
        "2025-01-01T10:60:00Z",
        "2025-01-01T10:00:00+24:00",
        "-000000-01-01",
        "2025-1-1T",
        "Foo 14 2025",
        "1700000000000",
    ]
    for text in invalid:
        assert parse_js_date(text) is None, text


def test_parse_returns_aware_utc() -> None:
    dt = parse_js_date("2025-02-14T09:03:27+05:00")
    assert dt is not None
    assert dt.utcoffset() == timedelta(0)


@given(st.text(max_size=40))
def test_parse_never_raises(text: str) -> None:
    parse_js_date(text)
