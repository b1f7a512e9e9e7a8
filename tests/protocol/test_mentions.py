from __future__ import annotations

import re

from hypothesis import given, strategies as st

from agentim.protocol.mentions import parse_mentions, resolve_mentions


def test_spec_examples() -> None:
    assert parse_mentions("a@b.com") == ["b"]
    assert parse_mentions("@bot-") == ["bot-"]
    assert parse_mentions("@bot-1's turn") == ["bot-1"]
    assert parse_mentions("@日本") == []
    assert parse_mentions("@-x") == []


def test_distinct_in_first_occurrence_order() -> None:
    assert parse_mentions("@b @a @b @c @a") == ["b", "a", "c"]


def test_case_is_kept_and_distinct() -> None:
    assert parse_mentions("@Bot @bot") == ["Bot", "bot"]


def test_mentions_need_no_separator() -> None:
    assert parse_mentions("@a@b") == ["a", "b"]
    assert parse_mentions("@@x") == ["x"]
    assert parse_mentions("@_x.y") == ["_x"]


def test_non_ascii_ends_a_name() -> None:
    assert parse_mentions("@abcé") == ["abc"]
    assert parse_mentions("@ａｂｃ") == []  # fullwidth letters are not ASCII \w


def test_no_mentions() -> None:
    assert parse_mentions("") == []
    assert parse_mentions("mail me @ home") == []


@given(st.text())
def test_matches_js_reference_regex(content: str) -> None:
    found = re.findall(r"@(\w[\w-]*)", content, flags=re.ASCII)
    assert parse_mentions(content) == list(dict.fromkeys(found))


AGENTS = [
    ("id-1", "coder", "offline"),
    ("id-2", "coder", "online"),
    ("id-3", "coder", "online"),
    ("id-4", "reviewer", "offline"),
    ("id-5", "reviewer", "busy"),
    ("id-6", "Tester", "online"),
]


def test_resolve_prefers_the_first_online_agent() -> None:
    assert resolve_mentions(["coder"], AGENTS) == ["id-2"]


def test_resolve_falls_back_to_the_first_agent() -> None:
    assert resolve_mentions(["reviewer"], AGENTS) == ["id-4"]


def test_resolve_is_case_sensitive() -> None:
    assert resolve_mentions(["tester"], AGENTS) == []
    assert resolve_mentions(["Tester"], AGENTS) == ["id-6"]


def test_resolve_keeps_mention_order_and_skips_unknown() -> None:
    names = ["Tester", "alice", "coder", "reviewer"]
    assert resolve_mentions(names, AGENTS) == ["id-6", "id-2", "id-4"]


def test_resolve_dedups() -> None:
    assert resolve_mentions(["coder", "coder"], AGENTS) == ["id-2"]


def test_resolve_with_no_agents() -> None:
    assert resolve_mentions(["coder"], []) == []
