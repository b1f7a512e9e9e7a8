"""Events over Redis: published events reach the subscriber's sink in order, in bulk, and again
after the server drops the subscription; with Redis down, publish delivers locally (D16)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
import trio

from agentim.protocol.events import Event, Target, frame_event
from agentim.store.bridge import aio
from agentim.store.kv import EVENTS_CHANNEL, Kv, client_for, open_redis
from agentim.store.pubsub import EventBus, run_subscriber
from agentim.store.resp import Connection, Pool
from tests.store.test_resp import start_redis_server

DELIVERY_TIMEOUT_S = 10


class Sink:
    """Collects delivered events; `wait_for(n)` returns once n have arrived."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = trio.Event()

    def deliver(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, count: int) -> list[Event]:
        with trio.fail_after(DELIVERY_TIMEOUT_S):
            while len(self.events) < count:
                await self._changed.wait()
        return self.events


def _event(n: int) -> Event:
    return frame_event(Target.ROOM, "room-1", {"type": "server:test", "n": n})


@asynccontextmanager
async def _aio_only(url: str, prefix: str) -> AsyncIterator[Kv]:
    """A Kv without the native pool: the redis.asyncio path sentinel URLs take."""
    kv = Kv(client_for(url), prefix=prefix)
    try:
        yield kv
    finally:
        with trio.move_on_after(2, shield=True):
            await aio(kv.client.aclose)


KvFactory = Callable[[str, str], AbstractAsyncContextManager[Kv]]
PATHS: dict[str, KvFactory] = {
    "native": lambda url, prefix: open_redis(url, prefix=prefix),
    "redis.asyncio": _aio_only,
}


@pytest.fixture(params=sorted(PATHS))
def kv_factory(request: pytest.FixtureRequest) -> KvFactory:
    return PATHS[request.param]


def _prefix() -> str:
    # Only the events channel lives under it: channels leave no keys to clean up.
    return f"agentim-test:pubsub:{secrets.token_hex(6)}:"


async def test_published_events_are_delivered_in_order(
    bridge: None, nursery: trio.Nursery, redis_url: str, kv_factory: KvFactory
) -> None:
    sink = Sink()
    async with kv_factory(redis_url, _prefix()) as kv:
        await nursery.start(run_subscriber, kv, sink)
        bus = EventBus(kv, Sink())
        for n in range(5):
            await bus.publish(_event(n))
        events = await sink.wait_for(5)
        assert [e.message["n"] for e in events] == list(range(5))
        assert events[0] == _event(0)
        nursery.cancel_scope.cancel()


async def test_a_burst_of_500_events_is_delivered_whole_and_in_order(
    bridge: None, nursery: trio.Nursery, redis_url: str, kv_factory: KvFactory
) -> None:
    sink = Sink()
    async with kv_factory(redis_url, _prefix()) as kv:
        await nursery.start(run_subscriber, kv, sink)
        bus = EventBus(kv, Sink())
        await bus.publish_all([_event(n) for n in range(500)])
        events = await sink.wait_for(500)
        assert [e.message["n"] for e in events] == list(range(500))
        await trio.sleep(0.1)
        assert len(sink.events) == 500
        nursery.cancel_scope.cancel()


async def test_the_subscriber_resubscribes_after_the_server_kills_it(
    bridge: None,
    nursery: trio.Nursery,
    tmp_path: Path,
    kv_factory: KvFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A throwaway server: CLIENT KILL TYPE pubsub would also cut other runs' subscribers.
    server = await start_redis_server(nursery, tmp_path)
    url = f"redis://127.0.0.1:{server.port}/0"
    sink = Sink()
    async with kv_factory(url, _prefix()) as kv:
        bus = EventBus(kv, Sink())
        with caplog.at_level(logging.WARNING, logger="PubSub"):
            await nursery.start(run_subscriber, kv, sink)
            await bus.publish(_event(0))
            await sink.wait_for(1)
            admin = await Connection.open(url)
            try:
                assert await admin.call("CLIENT", "KILL", "TYPE", "pubsub") == 1
                await _wait_subscribed(admin, kv.key(EVENTS_CHANNEL))
            finally:
                await admin.aclose()
            await bus.publish(_event(1))
            events = await sink.wait_for(2)
        assert [e.message["n"] for e in events] == [0, 1]
        assert any(
            "Redis subscription lost, resubscribing" in r.getMessage() for r in caplog.records
        )
        nursery.cancel_scope.cancel()


async def _wait_subscribed(admin: Connection, channel: str) -> None:
    """Until the server counts one subscriber on the channel again."""
    with trio.fail_after(DELIVERY_TIMEOUT_S):
        # The server's state, not ours: nothing to wait on but a poll.
        while await admin.call("PUBSUB", "NUMSUB", channel) != [channel.encode(), 1]:  # noqa: ASYNC110
            await trio.sleep(0.05)


async def test_with_redis_down_publish_delivers_locally(
    bridge: None, caplog: pytest.LogCaptureFixture
) -> None:
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    kv = Kv(client_for(dead), native=Pool(dead))
    local = Sink()
    with caplog.at_level(logging.WARNING, logger="PubSub"), trio.fail_after(DELIVERY_TIMEOUT_S):
        await EventBus(kv, local).publish(_event(7))
    assert [e.message["n"] for e in local.events] == [7]
    assert any("delivering locally" in r.getMessage() for r in caplog.records)
    await aio(kv.client.aclose)
