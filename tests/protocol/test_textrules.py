from __future__ import annotations

import json

from hypothesis import given, strategies as st

from agentim.protocol.textrules import is_blank, js_trim, utf16_len


def test_utf16_len_counts_astral_as_two() -> None:
    assert utf16_len("") == 0
    assert utf16_len("abc") == 3
    assert utf16_len("é日") == 2
    assert utf16_len("😀") == 2
    assert utf16_len("a😀b") == 4
    assert utf16_len("👍🏽") == 4


def test_utf16_len_counts_lone_surrogates() -> None:
    assert utf16_len(json.loads('"\\ud800x"')) == 2


@given(st.text())
def test_utf16_len_matches_code_point_rule(s: str) -> None:
    assert utf16_len(s) == sum(2 if ord(c) > 0xFFFF else 1 for c in s)


def test_js_trim_strips_js_whitespace() -> None:
    assert js_trim(" \t\n\r\v\f x \u00a0\u2028\u2029\u3000\ufeff\u202f\u205f\u1680\u200a") == "x"


def test_js_trim_keeps_what_js_keeps() -> None:
    # Python's isspace() includes these, JavaScript's trim() does not.
    for char in ("\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\u200b", "\u180e"):
        assert js_trim(char) == char


def test_js_trim_keeps_inner_whitespace() -> None:
    assert js_trim("  a  b  ") == "a  b"


def test_is_blank() -> None:
    assert is_blank("")
    assert is_blank(" \ufeff\n\u3000")
    assert not is_blank(" x ")
    assert not is_blank("\u200b")
