"""Events over Redis: published events reach the subscriber's sink in order, in bulk, and after the
server cuts the subscriber off or loses its data, including those published while it was away; hubs
on other databases or prefixes of the same server never see them; with Redis down, publish
delivers locally (D16)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
import trio

from agentim.protocol.events import Event, Target, encode_event, frame_event
from agentim.store.bridge import aio
from agentim.store.kv import EVENTS_STREAM, Kv, client_for, open_redis, url_db
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
    kv = Kv(client_for(url), prefix=prefix, db=url_db(url))
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
    return f"agentim-test:pubsub:{secrets.token_hex(6)}:"


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A fresh key prefix on the run's Redis; its events stream is deleted after the test."""
    name = _prefix()
    yield name
    conn = await Connection.open(redis_url)
    try:
        await conn.call("DEL", name + EVENTS_STREAM)
    finally:
        await conn.aclose()


async def test_published_events_are_delivered_in_order(
    bridge: None, nursery: trio.Nursery, redis_url: str, prefix: str, kv_factory: KvFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    sink = Sink()
    async with kv_factory(redis_url, prefix) as kv:
        with caplog.at_level(logging.INFO, logger="PubSub"):
            await nursery.start(run_subscriber, kv, sink)
        assert caplog.records == []  # subscribed at the first try
        bus = EventBus(kv, Sink())
        for n in range(5):
            await bus.publish(_event(n))
        events = await sink.wait_for(5)
        assert [e.message["n"] for e in events] == list(range(5))
        assert events[0] == _event(0)
        nursery.cancel_scope.cancel()


async def test_a_burst_of_500_events_is_delivered_whole_and_in_order(
    bridge: None, nursery: trio.Nursery, redis_url: str, prefix: str, kv_factory: KvFactory
) -> None:
    sink = Sink()
    async with kv_factory(redis_url, prefix) as kv:
        await nursery.start(run_subscriber, kv, sink)
        bus = EventBus(kv, Sink())
        await bus.publish_all([_event(n) for n in range(500)])
        events = await sink.wait_for(500)
        assert [e.message["n"] for e in events] == list(range(500))
        await trio.sleep(0.1)
        assert len(sink.events) == 500
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("flush", [False, True], ids=["cut-off", "data-lost"])
async def test_events_stored_while_the_subscriber_is_cut_off_are_delivered_once_in_order(
    bridge: None,
    nursery: trio.Nursery,
    tmp_path: Path,
    kv_factory: KvFactory,
    caplog: pytest.LogCaptureFixture,
    flush: bool,
) -> None:
    # A throwaway server: CLIENT KILL and FLUSHALL would also hit other runs.
    server = await start_redis_server(nursery, tmp_path)
    url = f"redis://127.0.0.1:{server.port}/0"
    sink = Sink()  # the hub is both: local deliveries and the subscriber's go to the same sockets
    async with kv_factory(url, _prefix()) as kv:
        bus = EventBus(kv, sink)
        with caplog.at_level(logging.INFO, logger="PubSub"):
            await nursery.start(run_subscriber, kv, sink)
            await bus.publish(_event(0))
            await sink.wait_for(1)
            admin = await Connection.open(url)
            try:
                if flush:  # what a restart without persistence leaves: an empty stream
                    await admin.call("FLUSHALL")
                await admin.call("CLIENT", "KILL", "TYPE", "pubsub")
                await admin.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                for n in (1, 2, 3):  # stored, pushed to nobody: the subscriber waits 0.1 s
                    await admin.call("XADD", kv.key(EVENTS_STREAM), "*", "e", _payload(n))
            finally:
                await admin.aclose()
            await bus.publish(_event(4))
            events = await sink.wait_for(5)
            await trio.sleep(0.2)
        assert [e.message["n"] for e in sink.events] == [0, 1, 2, 3, 4]
        assert "Redis subscription lost, resubscribing" in caplog.text
        assert "Redis subscription restored after" in caplog.text
        assert ("Redis event stream was reset" in caplog.text) is flush
        assert events[1] == _event(1)
        nursery.cancel_scope.cancel()


def _payload(n: int) -> bytes:
    return encode_event(_event(n))


async def test_hubs_on_other_databases_or_prefixes_of_one_server_never_see_each_others_events(
    bridge: None, nursery: trio.Nursery, tmp_path: Path, kv_factory: KvFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    server = await start_redis_server(nursery, tmp_path)
    base = f"redis://127.0.0.1:{server.port}"
    shared = _prefix()
    places = [(f"{base}/1", shared), (f"{base}/2", shared), (f"{base}/1", _prefix())]
    sinks = [Sink() for _ in places]
    async with (
        kv_factory(*places[0]) as kv1,
        kv_factory(*places[1]) as kv2,
        kv_factory(*places[2]) as kv3,
    ):
        with caplog.at_level(logging.INFO, logger="PubSub"):
            for kv, sink in zip((kv1, kv2, kv3), sinks, strict=True):
                await nursery.start(run_subscriber, kv, sink)
        assert caplog.records == []  # each subscribed at the first try
        for n, kv in enumerate((kv1, kv2, kv3)):
            await EventBus(kv, Sink()).publish(_event(n))
        for n, sink in enumerate(sinks):
            assert [e.message["n"] for e in await sink.wait_for(1)] == [n]
        await trio.sleep(0.3)
        assert [[e.message["n"] for e in sink.events] for sink in sinks] == [[0], [1], [2]]
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("url", "db"),
    [("redis://h:6379", 0), ("redis://:pw@h:6379/3", 3), ("unix:///run/redis.sock?db=5", 5),
     ("redis+sentinel://:pw@s1:26379,s2:26379/mymaster/7", 7),
     ("redis+sentinel://s1:26379/mymaster", 0)],
)  # fmt: skip
def test_the_channel_carries_the_database_number_and_the_prefix(url: str, db: int) -> None:
    assert url_db(url) == db
    kv = Kv(client_for("redis://127.0.0.1:1/0"), prefix="p:", db=db)
    assert kv.events_channel == f"p:agentim:events:{db}"


async def test_with_redis_down_publish_delivers_locally_and_warns_once(
    bridge: None, caplog: pytest.LogCaptureFixture
) -> None:
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    kv = Kv(client_for(dead), native=Pool(dead))
    local = Sink()
    bus = EventBus(kv, local)
    with caplog.at_level(logging.WARNING, logger="PubSub"), trio.fail_after(DELIVERY_TIMEOUT_S):
        await bus.publish(_event(7))
        await bus.publish_all([_event(8), _event(9)])
    assert [e.message["n"] for e in local.events] == [7, 8, 9]
    warnings = [r.getMessage() for r in caplog.records if "delivering locally" in r.getMessage()]
    assert len(warnings) == 1
    assert bus.local_only == 3
    await aio(kv.client.aclose)
