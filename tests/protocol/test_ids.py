from __future__ import annotations

import re

from hypothesis import given, strategies as st

from agentim.protocol.ids import ID_ALPHABET, is_valid_path_id, new_id, new_request_id

NANOID = re.compile(r"[A-Za-z0-9_-]+")


def test_alphabet_has_64_distinct_symbols() -> None:
    assert len(set(ID_ALPHABET)) == 64


def test_new_id_is_21_url_safe_chars() -> None:
    value = new_id()
    assert len(value) == 21
    assert NANOID.fullmatch(value)


def test_new_id_honours_size() -> None:
    assert len(new_id(5)) == 5
    assert new_id(0) == ""


def test_new_request_id_is_12_chars() -> None:
    value = new_request_id()
    assert len(value) == 12
    assert NANOID.fullmatch(value)


def test_ids_differ() -> None:
    assert len({new_id() for _ in range(1000)}) == 1000


def test_every_symbol_appears() -> None:
    seen = set("".join(new_id() for _ in range(200)))
    assert seen == set(ID_ALPHABET)


def test_new_ids_are_valid_path_ids() -> None:
    assert is_valid_path_id(new_id())


def test_path_id_boundaries() -> None:
    assert is_valid_path_id("a")
    assert is_valid_path_id("x" * 30)
    assert not is_valid_path_id("")
    assert not is_valid_path_id("x" * 31)


def test_fixed_words_pass_as_ids() -> None:
    for word in ("me", "recent", "batch-delete", "shared"):
        assert is_valid_path_id(word)


def test_path_id_rejects_other_characters() -> None:
    for value in ("a.b", "a b", "a/b", "é", "abc\n", "a%20", "１"):
        assert not is_valid_path_id(value)


@given(st.text(max_size=40))
def test_path_id_matches_its_definition(value: str) -> None:
    expected = 1 <= len(value) <= 30 and all(c in ID_ALPHABET for c in value)
    assert is_valid_path_id(value) == expected
