"""D16: with Redis unreachable, chat goes on in each process, rate limits count per process,
a warning is logged, and pub/sub comes back by itself."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import attrs
import pytest
import trio

from agentim.protocol.events import Target, frame_event
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import Client, signed_in


class CuttableProxy:
    """A TCP relay to Redis that the test can cut and restore (a fake transport)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.down = False
        self.port = 0
        self._scopes: set[trio.CancelScope] = set()

    async def run(self, *, task_status: trio.TaskStatus[None]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._relay, listeners)

    def cut(self) -> None:
        self.down = True
        for scope in self._scopes:
            scope.cancel()

    async def _relay(self, client: trio.SocketStream) -> None:
        async with client:
            if self.down:
                return
            with trio.CancelScope() as scope:
                self._scopes.add(scope)
                try:
                    upstream = await trio.open_tcp_stream(*self.target)
                    async with upstream, trio.open_nursery() as nursery:
                        nursery.start_soon(_pipe, client, upstream, nursery.cancel_scope)
                        nursery.start_soon(_pipe, upstream, client, nursery.cancel_scope)
                finally:
                    self._scopes.discard(scope)


async def _pipe(source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope) -> None:
    try:
        async for chunk in source:
            await sink.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    done.cancel()


async def test_chat_survives_a_redis_outage(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_url: str, redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    parts = urlsplit(redis_url)
    proxy = CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    await nursery.start(proxy.run)
    proxied = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    hub = await start_hub(
        nursery, attrs.evolve(settings, redis_url=proxied, client_rate_limit_max=8), redis_prefix
    )
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    async with signed_in(hub, alice) as a, signed_in(hub, bob) as b:
        await a.join(room_id)
        await b.join(room_id)
        proxy.cut()
        with caplog.at_level(logging.WARNING), trio.fail_after(30):
            await a.send({"type": "client:send_message", "roomId": room_id, "content": "down"})
            for client in (a, b):
                frame = await client.receive_type("server:new_message")
                assert frame["message"]["content"] == "down"
            for _ in range(7):  # the per-process counter starts afresh: 8 frames are allowed
                await a.send({"type": "client:leave_room", "roomId": "x"})
            await a.send({"type": "client:leave_room", "roomId": "x"})
            assert (await a.receive_type("server:error"))["code"] == "RATE_LIMITED"
        assert "Redis unavailable for WS rate limiting, counting per process" in caplog.text
        proxy.down = False
        with trio.fail_after(30):
            while True:  # the subscriber resubscribes within a second or so
                await trio.sleep(0.5)
                if hub.services.events.published and await _redis_delivers(hub, b, room_id):
                    break
        await b.send({"type": "client:ping", "ts": 1})
        await b.receive_type("server:pong")
        await b.nothing()  # each event arrived once


async def _redis_delivers(hub: RunningHub, client: Client, room_id: str) -> bool:
    marker = {"type": "server:typing", "roomId": room_id, "userId": "probe", "username": "p"}
    try:
        await hub.services.kv.ping()  # raises while still down
    except Exception:
        return False
    await hub.services.events.publish(frame_event(Target.ROOM, room_id, marker))
    with trio.move_on_after(2):
        frame = await client.receive_type("server:typing")
        return bool(frame == marker)
    return False
