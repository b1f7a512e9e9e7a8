"""Conversations and their routers (STYLE §4.3): hops of one chain in order, one at a time; a
router per active conversation, bounded; idle routers exit. In-process only: autojump_clock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from agentim.routing.conversation import Conversations, Hop


@attrs.define
class Recorder:
    """A hop handler that records what it ran and can be told to take its time or fail."""

    handled: list[tuple[str, str]] = attrs.Factory(list)
    running: dict[str, int] = attrs.Factory(dict)
    overlap: bool = False
    delay_s: float = 0.0
    fail_on: str | None = None

    async def __call__(self, hop: Hop) -> None:
        cid = hop.conversation_id
        self.running[cid] = self.running.get(cid, 0) + 1
        self.overlap |= self.running[cid] > 1
        try:
            await trio.sleep(self.delay_s)
            if hop.message["id"] == self.fail_on:
                raise RuntimeError("boom")
            self.handled.append((cid, hop.message["id"]))
        finally:
            self.running[cid] -= 1


def hop(conversation_id: str, message_id: str) -> Hop:
    message: dict[str, Any] = {"id": message_id, "roomId": "room-1"}
    return Hop(conversation_id, message)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def conversations(nursery: trio.Nursery, recorder: Recorder) -> AsyncIterator[Conversations]:
    owner = Conversations(max_active=3, inbox_hops=4, idle_s=5.0, hop_limit_s=30.0)
    await nursery.start(owner.run, recorder)
    yield owner


async def test_hops_of_one_conversation_run_in_order_one_at_a_time(
    autojump_clock: trio.testing.MockClock, conversations: Conversations, recorder: Recorder
) -> None:
    recorder.delay_s = 1.0
    for i in range(4):
        assert conversations.route(hop("c1", f"m{i}"))
    assert conversations.route(hop("c2", "x"))
    await trio.sleep(2.5)
    assert ("c2", "x") in recorder.handled  # its own router: not behind c1's queue
    await trio.sleep(3)
    assert [m for c, m in recorder.handled if c == "c1"] == ["m0", "m1", "m2", "m3"]
    assert not recorder.overlap


async def test_an_idle_router_exits_and_the_next_hop_starts_a_new_one(
    autojump_clock: trio.testing.MockClock, conversations: Conversations, recorder: Recorder
) -> None:
    conversations.route(hop("c1", "m0"))
    await trio.sleep(4)
    conversations.route(hop("c1", "m1"))  # within idle_s: the same router goes on
    await trio.sleep(4)
    assert conversations.active == 1
    await trio.sleep(1.5)
    assert conversations.active == 0
    assert conversations.route(hop("c1", "m2"))
    assert conversations.active == 1
    await trio.sleep(0.1)
    assert recorder.handled == [("c1", "m0"), ("c1", "m1"), ("c1", "m2")]


async def test_a_hop_queued_as_the_router_times_out_is_still_handled(
    autojump_clock: trio.testing.MockClock, conversations: Conversations, recorder: Recorder
) -> None:
    """The router re-checks its inbox after the idle timeout before it leaves."""
    start = trio.current_time()
    conversations.route(hop("c1", "m0"))  # handled at once; the router then waits until +5 s
    await trio.sleep_until(start + 5.0)  # wake in the same tick as the router's idle deadline
    conversations.route(hop("c1", "m1"))
    await trio.sleep(6)
    assert recorder.handled == [("c1", "m0"), ("c1", "m1")]
    assert conversations.active == 0


async def test_the_number_of_conversations_is_bounded(
    autojump_clock: trio.testing.MockClock, conversations: Conversations,
    recorder: Recorder, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    for cid in ("c1", "c2", "c3"):
        assert conversations.route(hop(cid, "m"))
    with caplog.at_level(logging.WARNING, logger="Routing"):
        assert not conversations.route(hop("c4", "late"))
    assert (
        "routeToAgents: message late in room room-1 → nobody (too many active conversations: 3)"
        in caplog.text
    )
    assert conversations.route(hop("c1", "more"))  # existing ones still take hops
    await trio.sleep(6)
    assert conversations.active == 0
    assert conversations.route(hop("c4", "again"))


async def test_a_full_inbox_drops_the_hop(
    autojump_clock: trio.testing.MockClock, conversations: Conversations,
    recorder: Recorder, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    recorder.delay_s = 10
    results = [conversations.route(hop("c1", f"m{i}")) for i in range(6)]
    assert results == [True] * 4 + [False] * 2
    await trio.sleep(0.01)  # the router takes m0 (and sleeps on it): one slot frees
    assert conversations.route(hop("c1", "m6"))
    assert "nobody (conversation inbox full: 4 hops queued)" in caplog.text


async def test_a_failing_hop_is_logged_and_the_chain_goes_on(
    autojump_clock: trio.testing.MockClock, conversations: Conversations,
    recorder: Recorder, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    recorder.fail_on = "bad"
    conversations.route(hop("c1", "bad"))
    conversations.route(hop("c1", "good"))
    await trio.sleep(1)
    assert recorder.handled == [("c1", "good")]
    assert "routeToAgents: message bad in conversation c1 failed" in caplog.text
    assert "RuntimeError: boom" in caplog.text


async def test_a_stuck_hop_is_abandoned(
    autojump_clock: trio.testing.MockClock, conversations: Conversations,
    recorder: Recorder, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    recorder.delay_s = 3600
    conversations.route(hop("c1", "slow"))
    await trio.sleep(31)
    assert "routeToAgents: message slow in conversation c1 took over 30 s, abandoned" in (
        caplog.text
    )
    recorder.delay_s = 0
    conversations.route(hop("c1", "next"))
    await trio.sleep(0.1)
    assert recorder.handled == [("c1", "next")]


async def test_hops_are_dropped_when_not_running(caplog: pytest.LogCaptureFixture) -> None:
    idle = Conversations()
    assert not idle.route(hop("c1", "m"))
    assert "nobody (conversation routing is not running)" in caplog.text
    with pytest.raises(RuntimeError):
        _ = idle.http


async def test_shutdown_cancels_routers_and_closes_the_llm_client(
    autojump_clock: trio.testing.MockClock, recorder: Recorder
) -> None:
    recorder.delay_s = 3600
    owner = Conversations()
    async with trio.open_nursery() as nursery:
        await nursery.start(owner.run, recorder)
        http = owner.http
        owner.route(hop("c1", "m"))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert http.is_closed
    assert owner.active == 0
    assert not owner.route(hop("c2", "m"))
