"""Done-when of the agents issue: a mention reaches the gateway, the reply streams back in order,
completes once and is in the history; interrupted and oversized streams are kept as far as they
got (realtime.md §4, DIFFERENCES D5, D6)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio

from agentim.protocol.ids import new_id
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.gateway_helpers import (
    Gateway,
    add_agent_to_room,
    agent_name,
    agent_row,
    connect_gateway,
    signed_in_gateway,
    wait_disconnected,
)
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.ws.wsclient import Client, signed_in


@attrs.frozen
class Scene:
    hub: RunningHub
    owner: User
    room_id: str
    agent_id: str
    name: str
    client: Client
    gateway: Gateway


@asynccontextmanager
async def scene(hub: RunningHub) -> AsyncIterator[Scene]:
    """An owner in a room with their agent, a joined client socket and the agent's gateway."""
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent_id, name = f"agent-{new_id(8)}", agent_name()
    async with signed_in(hub, owner) as client, signed_in_gateway(hub, owner) as gateway:
        await gateway.register(agent_id, name)
        await add_agent_to_room(hub, room_id, agent_id)
        await client.join(room_id)
        yield Scene(hub, owner, room_id, agent_id, name, client, gateway)


async def _history(hub: RunningHub, user: User, room_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        response = await http.get(f"/api/messages/rooms/{room_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]["items"]  # type: ignore[no-any-return]


async def _send(client: Client, room_id: str, content: str) -> dict[str, Any]:
    await client.send({"type": "client:send_message", "roomId": room_id, "content": content})
    return (await client.receive_type("server:new_message"))["message"]


async def _chunks(client: Client, count: int) -> list[dict[str, Any]]:
    return [await client.receive_type("server:message_chunk") for _ in range(count)]


async def test_mention_streams_reply_in_order_and_persists(hub: RunningHub) -> None:
    async with scene(hub) as s:
        sent = await _send(s.client, s.room_id, f"hello @{s.name} please")
        delivery = await s.gateway.receive_type("server:send_to_agent")
        assert delivery == {
            "type": "server:send_to_agent", "agentId": s.agent_id, "roomId": s.room_id,
            "messageId": sent["id"], "content": f"hello @{s.name} please",
            "senderName": s.owner.username, "senderType": "user", "routingMode": "direct",
            "conversationId": delivery["conversationId"], "depth": 0,
        }  # fmt: skip
        assert len(delivery["conversationId"]) == 21
        reply_id = new_id()
        parts = [f"part {i} " for i in range(5)]
        await s.gateway.stream_reply(s.room_id, s.agent_id, reply_id, parts)
        chunks = await _chunks(s.client, 5)
        assert chunks == [
            {"type": "server:message_chunk", "roomId": s.room_id, "agentId": s.agent_id,
             "agentName": s.name, "messageId": reply_id,
             "chunk": {"type": "text", "content": part}}
            for part in parts
        ]  # fmt: skip
        complete = await s.client.receive_type("server:message_complete")
        message = complete["message"]
        assert message == {
            "id": reply_id, "roomId": s.room_id, "senderId": s.agent_id, "senderType": "agent",
            "senderName": s.name, "type": "agent_response", "content": "".join(parts),
            "mentions": [], "chunks": [{"type": "text", "content": p} for p in parts],
            "createdAt": message["createdAt"],
        }  # fmt: skip
        status = await s.client.receive_type("server:agent_status")
        assert status["agent"] == {"id": s.agent_id, "name": s.name, "type": "generic",
                                   "status": "online"}  # fmt: skip
        await s.client.nothing(0.3)  # one message_complete, nothing more
        history = await _history(hub, s.owner, s.room_id)
        saved = {m["id"]: m for m in history}
        assert set(saved) == {reply_id, sent["id"]}
        assert saved[reply_id]["content"] == "".join(parts)
        assert saved[reply_id]["chunks"] == message["chunks"]


async def test_reply_reusing_the_user_message_id_gets_a_fresh_id(hub: RunningHub) -> None:
    async with scene(hub) as s:
        sent = await _send(s.client, s.room_id, f"@{s.name} hi")
        delivery = await s.gateway.receive_type("server:send_to_agent")
        await s.gateway.stream_reply(s.room_id, s.agent_id, delivery["messageId"], ["a", "b"])
        chunks = await _chunks(s.client, 2)
        assert {c["messageId"] for c in chunks} == {sent["id"]}  # relayed as sent
        message = (await s.client.receive_type("server:message_complete"))["message"]
        assert message["id"] != sent["id"] and len(message["id"]) == 21  # D5
        assert message["content"] == "ab"
        history = await _history(hub, s.owner, s.room_id)
        assert {m["id"]: m["content"] for m in history} == {
            message["id"]: "ab",
            sent["id"]: f"@{s.name} hi",
        }


async def test_message_without_a_mention_reaches_no_agent(hub: RunningHub) -> None:
    async with scene(hub) as s:
        await _send(s.client, s.room_id, "hello everyone")
        await _send(s.client, s.room_id, "@nobody_here hello")
        await s.gateway.nothing(0.5, ignore=("server:room_context",))


async def test_gateway_killed_mid_stream_keeps_partial_reply(hub: RunningHub) -> None:
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent_id, name = f"agent-{new_id(8)}", agent_name()
    reply_id = new_id()
    async with signed_in(hub, owner) as client:
        async with signed_in_gateway(hub, owner) as gateway:
            await gateway.register(agent_id, name)
            await add_agent_to_room(hub, room_id, agent_id)
            await client.join(room_id)
            for part in ("one ", "two ", "three"):
                await gateway.chunk(room_id, agent_id, reply_id, part)
            await gateway.chunk(room_id, agent_id, reply_id, "hmm", kind="thinking")
            assert len(await _chunks(client, 4)) == 4
            await gateway.ws.aclose()  # the gateway dies mid-stream
        message = (await client.receive_type("server:message_complete"))["message"]
        assert message["senderId"] == agent_id and message["id"] == reply_id
        assert message["content"] == "one two three"
        assert message["chunks"][-1] == {
            "type": "error",
            "content": "Stream interrupted: gateway disconnected",
        }
        assert len(message["chunks"]) == 5
        status = await client.receive_type("server:agent_status")
        assert status["agent"]["status"] == "offline"
    row = await agent_row(hub, agent_id)
    assert row is not None and row["status"] == "offline"
    history = await _history(hub, owner, room_id)
    assert history[0]["id"] == reply_id and history[0]["content"] == "one two three"
    await wait_disconnected(hub, row["gateway_id"])


async def test_stream_over_the_cap_ends_with_an_error_chunk(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    hub = await start_hub(nursery, attrs.evolve(settings, max_agent_message_bytes=1024),
                          redis_prefix)  # fmt: skip
    async with scene(hub) as s:
        reply_id = new_id()
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            for _ in range(3):
                await s.gateway.chunk(s.room_id, s.agent_id, reply_id, "x" * 400)
            await s.gateway.chunk(s.room_id, s.agent_id, reply_id, "late")
            error = await s.gateway.receive_type("server:error")
            assert error == {
                "type": "server:error",
                "code": "STREAM_TOO_LARGE",
                "message": "Stream total size exceeds maximum (1024 bytes)",
            }
            await s.gateway.complete(s.room_id, s.agent_id, reply_id, "x" * 1200)
            await s.gateway.sync()
        chunks = await _chunks(s.client, 3)
        assert [c["chunk"]["type"] for c in chunks] == ["text", "text", "error"]
        assert chunks[-1]["chunk"]["content"] == "Stream total size exceeds maximum (1024 bytes)"
        message = (await s.client.receive_type("server:message_complete"))["message"]
        assert message["content"] == "x" * 800
        assert message["chunks"][-1]["type"] == "error"
        await s.client.nothing(0.3)
        assert f"Agent {s.agent_id} reply {reply_id} exceeds 1024 bytes" in caplog.text
        history = await _history(hub, s.owner, s.room_id)
        assert [m["content"] for m in history] == ["x" * 800]


async def test_chunks_from_unowned_or_outside_agents_are_dropped(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with scene(hub) as s:
        elsewhere = await create_room(hub, s.owner)
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await s.gateway.chunk(s.room_id, "not-mine", "m1", "x")
            await s.gateway.chunk(elsewhere, s.agent_id, "m2", "x")
            await s.gateway.complete(s.room_id, "not-mine", "m1", "x")
            await s.gateway.complete(elsewhere, s.agent_id, "m2", "x")
            await s.gateway.sync()
        await s.client.nothing(0.3)
        text = caplog.text
        assert "Gateway attempted to send chunk for unowned agent not-mine" in text
        assert f"Agent {s.agent_id} is not a member of room {elsewhere}, dropping chunk" in text
        assert "Gateway attempted to complete message for unowned agent not-mine" in text
        assert f"Agent {s.agent_id} is not a member of room {elsewhere}, dropping message" in text


async def test_other_users_gateway_cannot_stream_for_the_agent(hub: RunningHub) -> None:
    async with scene(hub) as s:
        stranger = await signed_in_user(hub)
        async with connect_gateway(hub) as other:
            await other.auth(stranger)
            await other.register(s.agent_id, "thief")
            await other.chunk(s.room_id, s.agent_id, "m", "x")
            await other.sync()
        await s.client.nothing(0.3)
        row = await agent_row(hub, s.agent_id)
        assert row is not None and row["name"] == s.name
