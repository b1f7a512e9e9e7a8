"""Hub timers and background tasks: they fire, cancel, and are refused quietly while stopping."""

from __future__ import annotations

import trio
import trio.testing

from agentim.routing.hub import Hub


async def test_a_timer_fires_unless_cancelled(autojump_clock: trio.testing.MockClock) -> None:
    fired: list[str] = []

    async def record(name: str) -> None:
        fired.append(name)

    hub = Hub()
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        hub.start_timer("a", 5, record, "a")
        hub.start_timer("b", 5, record, "b")
        assert hub.cancel_timer("b")
        await trio.sleep(6)
        nursery.cancel_scope.cancel()
    assert fired == ["a"]


async def test_timers_asked_for_while_the_hub_stops_are_refused_quietly() -> None:
    """Sockets closing at shutdown start presence timers after the hub's nursery closed."""

    async def never(_: str) -> None:
        raise AssertionError("must not run")

    hub = Hub()
    async with trio.open_nursery() as closing:
        hub.nursery = closing
    hub.start_timer("late", 1, never, "late")  # the nursery is closed to new tasks
    hub.ensure_background("late-task", never, "late")
    assert not hub.cancel_timer("late")
    assert hub.nursery is None
