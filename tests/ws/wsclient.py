"""A trio-websocket client that speaks the client protocol, for the WebSocket tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_websocket

from tests.helpers import RunningHub, User

RECEIVE_TIMEOUT_S = 10.0


class JsonSocket:
    """A WebSocket with JSON helpers (clients and scripted gateways share it)."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.ws.send_message(
            message if isinstance(message, str | bytes) else json.dumps(message)
        )

    async def receive(self) -> dict[str, Any]:
        with trio.fail_after(RECEIVE_TIMEOUT_S):
            return json.loads(await self.ws.get_message())  # type: ignore[no-any-return]

    async def receive_type(self, kind: str) -> dict[str, Any]:
        """The next frame of this type, skipping others (presence, typing, ...)."""
        with trio.fail_after(RECEIVE_TIMEOUT_S):
            while True:
                frame = await self.receive()
                if frame["type"] == kind:
                    return frame


class Client(JsonSocket):
    """A /ws/client socket."""

    async def nothing(self, wait: float = 0.3) -> None:
        """Assert no frame arrives within `wait` seconds."""
        with trio.move_on_after(wait):
            frame = await self.ws.get_message()
            raise AssertionError(f"unexpected frame {frame}")

    async def auth(self, user: User) -> dict[str, Any]:
        await self.send({"type": "client:auth", "token": user.token})
        return await self.receive_type("server:auth_result")

    async def join(self, room_id: str) -> None:
        """Join and wait until the join took effect (a ping round trip: frames are in order)."""
        await self.send({"type": "client:join_room", "roomId": room_id})
        await self.send({"type": "client:ping", "ts": 1})
        frame = await self.receive_type("server:pong")
        assert frame == {"type": "server:pong", "ts": 1}

    async def closed(self) -> trio_websocket.CloseReason:
        """Read until the server closes; returns the close reason."""
        with trio.fail_after(RECEIVE_TIMEOUT_S):
            try:
                while True:
                    await self.ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                return exc.reason
        raise AssertionError("unreachable")


@asynccontextmanager
async def connect(hub_or_url: RunningHub | str) -> AsyncIterator[Client]:
    url = hub_or_url if isinstance(hub_or_url, str) else hub_or_url.ws_url
    async with trio_websocket.open_websocket_url(f"{url}/ws/client", connect_timeout=10) as ws:
        yield Client(ws)


@asynccontextmanager
async def signed_in(hub: RunningHub, user: User) -> AsyncIterator[Client]:
    """A client socket authenticated as `user`."""
    async with connect(hub) as client:
        result = await client.auth(user)
        assert result == {"type": "server:auth_result", "ok": True, "userId": user.id}
        yield client
