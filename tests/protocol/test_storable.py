"""protocol/storable: the one rule for text PostgreSQL cannot store, and the frame codec's use."""

from __future__ import annotations

import json

from hypothesis import given, strategies as st

from agentim.protocol.codec import CLIENT_MAX_COLLECTION, CLIENT_MAX_DEPTH, FrameError, parse_frame
from agentim.protocol.storable import is_storable, may_hold_unstorable, unstorable_path

BAD_CHARS = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _parse(text: str) -> object:
    return parse_frame(text, max_depth=CLIENT_MAX_DEPTH, max_collection=CLIENT_MAX_COLLECTION)


def test_nul_and_lone_surrogates_are_unstorable_pairs_are_fine() -> None:
    assert not is_storable("a\x00b")
    assert not is_storable("\ud800")
    assert not is_storable("x\udfff")
    assert is_storable(json.loads('"\\ud83d\\ude00"'))  # a pair decodes to one astral char
    assert is_storable("\x01\x1f\u2028\ufffd\U0001f600 ordinary")


def test_the_path_names_the_field_zod_style() -> None:
    assert unstorable_path({"a": [1, {"b": "x\x00"}]}) == "a.1.b"
    assert unstorable_path("\ud800") == "(root)"
    assert unstorable_path({"ok": "fine", "k\x00ey": 1}) == "k\ufffdey"
    assert unstorable_path({"a": ["x", {"b": None}]}) is None
    assert unstorable_path({"first": ["ok", "\x00"], "second": "\x00"}) == "first.1"


@given(json_values)
def test_storable_json_passes_the_codec_unchanged(value: object) -> None:
    value = _strip(value)
    frame = {"type": "client:ping", "v": value}
    for text in (json.dumps(frame), json.dumps(frame, ensure_ascii=False)):
        assert _parse(text) == frame


@given(json_values, BAD_CHARS, st.integers(min_value=0, max_value=3))
def test_a_bad_character_anywhere_fails_the_frame(value: object, bad: str, where: int) -> None:
    value = _strip(value)
    placed: object = [
        {"content": f"x{bad}y", "v": value},
        {"v": value, "nested": [{"deep": bad}]},
        {f"key{bad}": value},
        {"roomId": bad, "v": value},
    ][where]
    text = json.dumps({"type": "client:send_message", **placed})  # type: ignore[dict-item]
    assert may_hold_unstorable(text)
    assert _parse(text) is FrameError.UNSTORABLE_TEXT


def test_an_escaped_backslash_before_u0000_is_ordinary_text() -> None:
    text = '{"type":"client:ping","v":"\\\\u0000 and \\\\ud800"}'
    assert may_hold_unstorable(text)  # the cheap check may say "maybe"
    assert _parse(text) == {"type": "client:ping", "v": "\\u0000 and \\ud800"}


def _strip(value: object) -> object:
    """The generated value without the characters under test (they are placed explicitly)."""
    if isinstance(value, str):
        return "".join(ch for ch in value if is_storable(ch))
    if isinstance(value, list):
        return [_strip(item) for item in value]
    if isinstance(value, dict):
        return {_strip(k): _strip(v) for k, v in value.items()}  # type: ignore[misc]
    return value
