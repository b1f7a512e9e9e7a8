"""A scripted gateway over trio-websocket, speaking the gateway protocol, for the agent tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio_websocket

from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.ws.wsclient import Client, JsonSocket, signed_in

RECEIVE_TIMEOUT_S = 10.0
DEVICE = {"hostname": "box", "platform": "linux", "arch": "x64", "nodeVersion": "v22.0.0"}


class Gateway(JsonSocket):
    """A /ws/gateway socket; `gateway_id` is fixed for its lifetime."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, gateway_id: str) -> None:
        super().__init__(ws)
        self.gateway_id = gateway_id

    async def nothing(self, wait: float = 0.3, *, ignore: Sequence[str] = ()) -> None:
        """Assert no frame (other than `ignore`d types) arrives within `wait` seconds."""
        with trio.move_on_after(wait):
            while True:
                frame = json.loads(await self.ws.get_message())
                if frame["type"] not in ignore:
                    raise AssertionError(f"unexpected frame {frame}")

    async def sync(self) -> None:
        """Wait until every frame sent so far was handled (frames are handled in order)."""
        ts = trio.current_time()
        await self.send({"type": "gateway:ping", "ts": ts})
        while (await self.receive_type("server:pong"))["ts"] != ts:
            pass

    async def auth(self, user: User, *, token: str | None = None) -> dict[str, Any]:
        await self.send({"type": "gateway:auth", "token": user.token if token is None else token,
                         "gatewayId": self.gateway_id, "deviceInfo": DEVICE})  # fmt: skip
        return await self.receive_type("server:gateway_auth_result")

    async def register(
        self, agent_id: str, name: str, *, agent_type: str = "generic", **extra: Any
    ) -> None:
        """Register an agent and wait until the hub handled it (there is no ack)."""
        agent = {"id": agent_id, "name": name, "type": agent_type, **extra}
        await self.send({"type": "gateway:register_agent", "agent": agent})
        await self.sync()

    async def chunk(
        self, room_id: str, agent_id: str, message_id: str, content: str, kind: str = "text"
    ) -> None:
        await self.send({"type": "gateway:message_chunk", "roomId": room_id, "agentId": agent_id,
                         "messageId": message_id,
                         "chunk": {"type": kind, "content": content}})  # fmt: skip

    async def complete(
        self, room_id: str, agent_id: str, message_id: str, full_content: str, **extra: Any
    ) -> None:
        await self.send({"type": "gateway:message_complete", "roomId": room_id,
                         "agentId": agent_id, "messageId": message_id,
                         "fullContent": full_content, **extra})  # fmt: skip

    async def stream_reply(
        self, room_id: str, agent_id: str, message_id: str, parts: Sequence[str]
    ) -> None:
        """Stream `parts` as text chunks, then complete with their concatenation."""
        for part in parts:
            await self.chunk(room_id, agent_id, message_id, part)
        chunks = [{"type": "text", "content": part} for part in parts]
        await self.complete(room_id, agent_id, message_id, "".join(parts), chunks=chunks,
                            conversationId="c", depth=0)  # fmt: skip

    async def closed(self) -> trio_websocket.CloseReason:
        with trio.fail_after(RECEIVE_TIMEOUT_S):
            try:
                while True:
                    await self.ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                return exc.reason
        raise AssertionError("unreachable")


@asynccontextmanager
async def connect_gateway(
    hub_or_url: RunningHub | str, gateway_id: str | None = None
) -> AsyncIterator[Gateway]:
    url = hub_or_url if isinstance(hub_or_url, str) else hub_or_url.ws_url
    async with trio_websocket.open_websocket_url(
        f"{url}/ws/gateway", connect_timeout=10, max_message_size=64 * 1024 * 1024
    ) as ws:
        yield Gateway(ws, gateway_id or f"gw-{new_id(10)}")


@asynccontextmanager
async def signed_in_gateway(
    hub_or_url: RunningHub | str, user: User, gateway_id: str | None = None
) -> AsyncIterator[Gateway]:
    """A gateway socket authenticated as `user`."""
    async with connect_gateway(hub_or_url, gateway_id) as gateway:
        result = await gateway.auth(user)
        assert result == {"type": "server:gateway_auth_result", "ok": True}, result
        yield gateway


async def add_agent_to_room(hub: RunningHub, room_id: str, agent_id: str) -> None:
    """Insert an agent member row directly (tests that do not test member management)."""
    now = iso_now()
    await hub.services.db.execute(
        "INSERT INTO room_members (room_id, member_id, member_type, role, joined_at) "
        "VALUES ($1, $2, 'agent', 'member', $3)",
        room_id, agent_id, now,
    )  # fmt: skip


async def agent_row(hub: RunningHub, agent_id: str) -> dict[str, Any] | None:
    row = await hub.services.db.fetchrow("SELECT * FROM agents WHERE id = $1", agent_id)
    return dict(row) if row is not None else None


async def wait_status(hub: RunningHub, agent_id: str, status: str) -> None:
    """Wait until the agent's row has `status` (a socket's close is handled after it is gone)."""
    with trio.fail_after(RECEIVE_TIMEOUT_S):
        while (await agent_row(hub, agent_id) or {}).get("status") != status:  # noqa: ASYNC110
            await trio.sleep(0.02)  # a database row: polling is the only way to watch it


async def wait_disconnected(hub: RunningHub, gateway_id: str) -> None:
    """Wait until the hub finished handling the gateway's close (its last step, §5.4)."""
    query = "SELECT disconnected_at FROM gateways WHERE id = $1"
    with trio.fail_after(RECEIVE_TIMEOUT_S):
        while await hub.services.db.fetchval(query, gateway_id) is None:  # noqa: ASYNC110
            await trio.sleep(0.02)  # a database row: polling is the only way to watch it


def agent_name() -> str:
    """A mentionable agent name (`[A-Za-z0-9_-]`)."""
    return f"bot_{new_id(6).replace('-', 'x')}"


@attrs.frozen
class AgentScene:
    owner: User
    room_id: str
    agent_id: str
    gateway: Gateway
    client: Client


@asynccontextmanager
async def agent_with_watcher(hub: RunningHub) -> AsyncIterator[AgentScene]:
    """An owner's room holding an agent registered on the owner's gateway, and the owner's
    client socket joined to it."""
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent_id = f"agent-{new_id(8)}"
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, owner) as client:
        await gateway.register(agent_id, agent_name())
        await add_agent_to_room(hub, room_id, agent_id)
        await client.join(room_id)
        yield AgentScene(owner, room_id, agent_id, gateway, client)
