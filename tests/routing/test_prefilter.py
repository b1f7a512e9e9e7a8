"""ROUTER_LLM_MAX_AGENTS (head-gap config row D7): at most that many candidates reach the
router LLM, the ones sharing most words with the message, ties in member order."""

from __future__ import annotations

from agentim.routing.ai_selector import RouterCandidate, prefilter

CANDIDATES = (
    RouterCandidate("a", "alice", "claude-code", ("python", "review")),
    RouterCandidate("b", "bob", "codex", ("docs",)),
    RouterCandidate("c", "carol", "gemini", ("python", "docs", "release")),
    RouterCandidate("d", "dave", "generic"),
)


def ids(found: list[RouterCandidate]) -> list[str]:
    return [c.id for c in found]


def test_within_the_limit_all_stay_in_order() -> None:
    assert ids(prefilter(CANDIDATES, "anything", 4)) == ["a", "b", "c", "d"]


def test_over_the_limit_the_best_matches_stay() -> None:
    assert ids(prefilter(CANDIDATES, "Python DOCS for the release", 2)) == ["c", "a"]
    assert ids(prefilter(CANDIDATES, "review the docs", 2)) == ["a", "b"]
    assert ids(prefilter(CANDIDATES, "nothing in common", 1)) == ["a"]
    assert ids(prefilter(CANDIDATES, "ask gemini 你好", 1)) == ["c"]
