"""The per-process visited sets used while Redis is down (realtime.md §3.8, DIFFERENCES D16)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, strategies as st

from agentim.routing.fallback import VisitedSets


def test_members_expire_300_s_after_the_last_add() -> None:
    sets = VisitedSets()
    sets.add("conv:c:visited", "a", now=0)
    sets.add("conv:c:visited", "b", now=200)  # refreshes the whole key
    assert sets.contains("conv:c:visited", "a", now=499)
    assert not sets.contains("conv:c:visited", "a", now=500)
    assert not sets.contains("conv:other:visited", "a", now=1)


def test_expired_keys_are_swept_every_60_s() -> None:
    sets = VisitedSets()
    for i in range(5):
        sets.add(f"k{i}", "a", now=0)
    sets.add("late", "a", now=250)
    assert len(sets) == 6
    sets.contains("late", "a", now=301)  # k0-k4 expired at 300, but the last sweep was at 250
    assert len(sets) == 6
    sets.contains("late", "a", now=310)  # 60 s after it: swept
    assert len(sets) == 1


def test_at_capacity_expired_keys_go_first(caplog: pytest.LogCaptureFixture) -> None:
    sets = VisitedSets(capacity=3, sweep_interval_s=10_000)
    sets.add("old", "a", now=0)
    sets.add("k1", "a", now=100)
    sets.add("k2", "a", now=100)
    sets.add("new", "a", now=301)  # "old" expired at 300
    assert len(sets) == 3 and sets.contains("k1", "a", now=301)
    assert "Visited set fallback at capacity" not in caplog.text


def test_at_capacity_the_oldest_inserted_key_is_evicted(caplog: pytest.LogCaptureFixture) -> None:
    sets = VisitedSets(capacity=3)
    for key in ("k1", "k2", "k3"):
        sets.add(key, "a", now=0)
    sets.add("k1", "b", now=1)  # a refresh keeps k1's age
    with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
        sets.add("k4", "a", now=2)
    assert not sets.contains("k1", "a", now=2)
    assert all(sets.contains(key, "a", now=2) for key in ("k2", "k3", "k4"))
    assert "Visited set fallback at capacity (3), evicting oldest entry" in caplog.text


@given(st.lists(st.tuples(st.integers(0, 30), st.sampled_from("abc")), max_size=60))
def test_never_more_keys_than_the_capacity(adds: list[tuple[int, str]]) -> None:
    sets = VisitedSets(capacity=8)
    for step, (key, member) in enumerate(adds):
        sets.add(f"k{key}", member, now=step)
        assert len(sets) <= 8
        assert sets.contains(f"k{key}", member, now=step)
