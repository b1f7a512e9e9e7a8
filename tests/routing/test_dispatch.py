"""The pure routing decisions (realtime.md §3.2, §3.3, §3.6, §3.7; DIFFERENCES D11)."""

from __future__ import annotations

from hypothesis import given, strategies as st

from agentim.routing.dispatch import (
    AgentMember,
    broadcast_candidates,
    broadcast_targets,
    chain_targets,
    chain_too_deep,
    choose_targets,
    over_rate_limit,
)

NAMES = st.sampled_from(["ann", "bob", "Bob", "cy-1", "dee_"])
MEMBERS = st.lists(
    st.builds(AgentMember, id=st.text("abcdef", min_size=1, max_size=4), name=NAMES,
              status=st.sampled_from(["online", "offline", "busy"])),
    max_size=6, unique_by=lambda m: m.id,
)  # fmt: skip


@given(mentions=st.lists(NAMES, unique=True, max_size=5), members=MEMBERS)
def test_choose_targets_resolves_mentions_to_members(
    mentions: list[str], members: list[AgentMember]
) -> None:
    targets = choose_targets(mentions, members)
    assert len(targets.agent_ids) == len(set(targets.agent_ids))
    assert set(targets.agent_ids) <= {m.id for m in members}
    named = {m.name for m in members if m.id in targets.agent_ids}
    assert named <= set(mentions)
    assert {m.name for m in members} & set(mentions) == named  # every mentioned name resolves
    if targets.agent_ids:
        assert targets.mode == "direct" and not targets.reason
    else:
        assert targets.reason


def test_choose_targets_prefers_an_online_namesake() -> None:
    members = [AgentMember("a1", "bot", "offline"), AgentMember("a2", "bot", "online"),
               AgentMember("a3", "Bot", "online")]  # fmt: skip
    assert choose_targets(["bot"], members).agent_ids == ["a2"]
    assert choose_targets(["Bot", "bot", "nobody"], members).agent_ids == ["a3", "a2"]
    assert choose_targets([], members).reason == "no agent member mentioned"
    assert choose_targets(["bot"], []).reason == "no agent members"


def test_broadcast_candidates_leave_out_api_agents() -> None:
    members = [AgentMember("a1", "x", "online"), AgentMember("a2", "y", "offline", "api"),
               AgentMember("a3", "z", "offline", "cli")]  # fmt: skip
    assert [m.id for m in broadcast_candidates(members)] == ["a1", "a3"]


@given(chosen=st.lists(st.sampled_from(["a1", "a2", "a3", "zz", ""]), max_size=8))
def test_broadcast_targets_name_each_candidate_once_in_llm_order(chosen: list[str]) -> None:
    candidates = [AgentMember("a1", "x", "online"), AgentMember("a2", "y", "online")]
    targets = broadcast_targets(chosen, candidates)
    expected = list(dict.fromkeys(c for c in chosen if c in ("a1", "a2")))
    assert targets.agent_ids == expected
    assert targets.mode == "broadcast" if expected else targets.reason


def test_chain_targets_skip_the_sender_and_unknown_names() -> None:
    members = [AgentMember("a1", "ann", "online"), AgentMember("a2", "bob", "online")]
    assert chain_targets(["ann", "bob", "cy"], members, "a1") == ["a2"]
    assert chain_targets(["ann"], members, "a1") == []
    assert chain_targets([], members, "a1") == []


def test_depth_and_rate_limits_are_inclusive_as_the_reference() -> None:
    assert [chain_too_deep(d, 5) for d in (0, 4, 5, 6)] == [False, False, True, True]
    assert [over_rate_limit(c, 20) for c in (1, 20, 21)] == [False, False, True]
