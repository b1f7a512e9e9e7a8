"""Timestamps as the wire and the TEXT columns carry them: `YYYY-MM-DDTHH:MM:SS.mmmZ` (api.md §0.3).

Stored values are compared as strings, so `to_iso` is the only formatter of timestamps.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# JavaScript `Date.parse`, ISO branch: YYYY[-MM[-DD]][THH:mm[:ss[.sss]][Z|±HH:mm]]; ±YYYYYY years.
# Date-only forms are UTC; date-times without a zone are local time in JS, and the hub runs in UTC.
_ISO: Final = re.compile(
    r"(?P<year>[+-]\d{6}|\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?"
    r"(?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<frac>\d+))?)?"
    r"(?P<zone>[Zz]|[+-]\d{2}:?\d{2})?)?",
    re.ASCII,
)
# V8's legacy fallback, for the forms people paste: 2025/02/14, 02/14/2025, toUTCString, toString.
_LEGACY_DATES: Final = (
    re.compile(r"(?P<year>\d{4})/(?P<month>\d{1,2})/(?P<day>\d{1,2})", re.ASCII),
    re.compile(r"(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4})", re.ASCII),
    re.compile(r"(?P<day>\d{1,2})\s+(?P<mon>[A-Za-z]{3,})\.?,?\s+(?P<year>\d{4})", re.ASCII),
    re.compile(r"(?P<mon>[A-Za-z]{3,})\.?\s+(?P<day>\d{1,2}),?\s+(?P<year>\d{4})", re.ASCII),
)
_LEGACY_WEEKDAY: Final = re.compile(
    r"(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+)?", re.ASCII | re.IGNORECASE
)
_LEGACY_TAIL: Final = re.compile(
    r"(?:\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?"
    r"\s*(?:GMT|UTC|UT|Z)?(?P<zone>[+-]\d{2}:?\d{2})?\s*(?:\([^)]*\))?",
    re.ASCII | re.IGNORECASE,
)
_MONTHS: Final = (
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
)


def to_iso(dt: datetime) -> str:
    """Format `dt` like JavaScript's `toISOString()`; a naive datetime is taken as UTC."""
    utc = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def iso_now() -> str:
    """Return the current time as `to_iso` formats it (`new Date().toISOString()`)."""
    return to_iso(datetime.now(UTC))


def iso_from_epoch_ms(ms: int) -> str:
    """Format milliseconds since the Unix epoch (`new Date(ms).toISOString()`)."""
    return to_iso(_EPOCH + timedelta(milliseconds=ms))


def parse_js_date(text: str) -> datetime | None:
    """Parse what `new Date(text)` accepts in its common forms; None where JS gives Invalid Date.

    The result is an aware UTC datetime. Days 29-31 roll over into the next month, as in V8.
    Dates outside Python's years 1-9999 are treated as invalid.
    """
    text = text.strip()
    iso = _ISO.fullmatch(text)
    if iso is not None:
        return _from_iso(iso)
    return _parse_legacy(text)


def _from_iso(match: re.Match[str]) -> datetime | None:
    year = match["year"]
    if year == "-000000":  # ECMAScript forbids negative zero as a year
        return None
    frac = match["frac"] or "0"
    return _compose(
        int(year),
        int(match["month"] or 1),
        int(match["day"] or 1),
        (int(match["hour"] or 0), int(match["minute"] or 0), int(match["second"] or 0)),
        int(frac[:3].ljust(3, "0")),
        _zone_minutes(match["zone"]),
    )


def _parse_legacy(text: str) -> datetime | None:
    start = _LEGACY_WEEKDAY.match(text)
    offset = start.end() if start is not None else 0
    for pattern in _LEGACY_DATES:
        date = pattern.match(text, offset)
        if date is None:
            continue
        tail = _LEGACY_TAIL.fullmatch(text, date.end())
        month = _month_number(date)
        if tail is None or month is None:
            return None
        clock = (int(tail["hour"] or 0), int(tail["minute"] or 0), int(tail["second"] or 0))
        zone = _zone_minutes(tail["zone"])
        return _compose(int(date["year"]), month, int(date["day"]), clock, 0, zone)
    return None


def _month_number(date: re.Match[str]) -> int | None:
    if "mon" not in date.re.groupindex:
        return int(date["month"])
    prefix = date["mon"][:3].lower()
    return _MONTHS.index(prefix) + 1 if prefix in _MONTHS else None


def _zone_minutes(zone: str | None) -> int | None:
    """Return the zone's offset east of UTC in minutes; None for a malformed zone."""
    if zone is None or zone in ("Z", "z"):
        return 0
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        return None
    sign = -1 if zone[0] == "-" else 1
    return sign * (hours * 60 + minutes)


def _compose(
    year: int, month: int, day: int, clock: tuple[int, int, int], ms: int, zone: int | None
) -> datetime | None:
    hour, minute, second = clock
    if zone is None or not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    if minute > 59 or second > 59 or hour > 24 or (hour == 24 and (minute or second or ms)):
        return None
    try:
        start = datetime(year, month, 1, tzinfo=UTC)
        return start + timedelta(
            days=day - 1, hours=hour, minutes=minute - zone, seconds=second, milliseconds=ms
        )
    except (ValueError, OverflowError):
        return None
