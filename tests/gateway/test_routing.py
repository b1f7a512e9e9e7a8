"""Routing to agents over real sockets (realtime.md §3.2-3.9, DIFFERENCES D12): direct mentions,
agent-to-agent chains with their depth, loop and rate checks, and room contexts."""

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
    signed_in_gateway,
    wait_disconnected,
)
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.http.routers_support import create_router
from tests.ws.wsclient import Client, signed_in

WAIT_S = 10.0


@attrs.frozen
class Agent:
    id: str
    name: str


@attrs.frozen
class Scene:
    hub: RunningHub
    owner: User
    room_id: str
    agents: list[Agent]
    client: Client
    gateway: Gateway


@pytest.fixture(autouse=True)
def _routing_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="Routing")
    caplog.set_level(logging.INFO, logger="GatewayHandler")
    caplog.set_level(logging.INFO, logger="RouterLLM")


@asynccontextmanager
async def routing_scene(
    hub: RunningHub, agents: int, *, broadcast: bool = False
) -> AsyncIterator[Scene]:
    """An owner's room with `agents` agents on one gateway, and the owner's joined client."""
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner, broadcast=broadcast)
    members = [Agent(f"agent-{new_id(8)}", agent_name()) for _ in range(agents)]
    async with signed_in(hub, owner) as client, signed_in_gateway(hub, owner) as gateway:
        for agent in members:
            await gateway.register(agent.id, agent.name)
            await add_agent_to_room(hub, room_id, agent.id)
        await client.join(room_id)
        yield Scene(hub, owner, room_id, members, client, gateway)


async def send_user_message(s: Scene, content: str) -> dict[str, Any]:
    """Send as the owner; the client endpoint routes it."""
    await s.client.send({"type": "client:send_message", "roomId": s.room_id, "content": content})
    message: dict[str, Any] = (await s.client.receive_type("server:new_message"))["message"]
    return message


async def complete(s: Scene, agent: Agent, content: str, **extra: Any) -> dict[str, Any]:
    """The agent's reply, as stored and broadcast."""
    await s.gateway.complete(s.room_id, agent.id, new_id(), content, **extra)
    message: dict[str, Any] = (await s.client.receive_type("server:message_complete"))["message"]
    assert message["senderId"] == agent.id
    return message


async def deliveries(gateway: Gateway, count: int) -> list[dict[str, Any]]:
    return [await gateway.receive_type("server:send_to_agent") for _ in range(count)]


async def wait_logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    with trio.fail_after(WAIT_S):
        while text not in caplog.text:  # noqa: ASYNC110
            await trio.sleep(0.02)  # log records: polling is the only way to watch them


def decision(message: dict[str, Any], outcome: str) -> str:
    return f"routeToAgents: message {message['id']} in room {message['roomId']} → {outcome}"


async def update_room(s: Scene, **changes: Any) -> None:
    """PUT /api/rooms/:id; each agent of the scene then gets its room context (§3.9)."""
    async with httpx.AsyncClient(base_url=s.hub.url, timeout=30) as http:
        response = await http.put(f"/api/rooms/{s.room_id}", headers=s.owner.headers,
                                  json=changes)  # fmt: skip
    assert response.status_code == 200, response.text
    for _ in s.agents:
        await s.gateway.receive_type("server:room_context")


async def set_room_router(s: Scene, **router: Any) -> dict[str, Any]:
    """Create a router over HTTP (its key stored encrypted) and attach it to the room."""
    async with httpx.AsyncClient(base_url=s.hub.url, timeout=30) as http:
        created = await create_router(http, s.owner, **router)
    await update_room(s, routerId=created["id"])
    return created


# user messages: direct ------------------------------------------------------------------------
async def test_direct_routing_reaches_exactly_the_mentioned_agents(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(hub, 3) as s:
        a, b, c = s.agents
        sent = await send_user_message(s, f"@{b.name} and @{a.name}: {c.name} rests. @{b.name}!")
        first, second = await deliveries(s.gateway, 2)
        conversation_id = first["conversationId"]
        assert first == {
            "type": "server:send_to_agent", "agentId": b.id, "roomId": s.room_id,
            "messageId": sent["id"], "content": sent["content"],
            "senderName": s.owner.username, "senderType": "user", "routingMode": "direct",
            "conversationId": conversation_id, "depth": 0,
        }  # fmt: skip
        assert second == {**first, "agentId": a.id}
        await s.gateway.nothing(0.3)
    assert decision(sent, f"direct [{b.id}, {a.id}] (conversation {conversation_id}, depth 0)") in (
        caplog.text
    )


async def test_each_user_message_starts_its_own_conversation(hub: RunningHub) -> None:
    async with routing_scene(hub, 1) as s:
        [a] = s.agents
        await send_user_message(s, f"@{a.name} one")
        await send_user_message(s, f"@{a.name} two")
        first, second = await deliveries(s.gateway, 2)
        assert (first["content"], second["content"]) == (f"@{a.name} one", f"@{a.name} two")
        assert first["conversationId"] != second["conversationId"]


async def test_no_route_without_a_mentioned_member_outside_broadcast_rooms(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(hub, 1) as s:
        outsider = Agent(f"agent-{new_id(8)}", agent_name())
        await s.gateway.register(outsider.id, outsider.name)  # not a member of the room
        plain = await send_user_message(s, "hello everyone")
        foreign = await send_user_message(s, f"@{outsider.name} @{s.agents[0].name.upper()}")
        await wait_logged(caplog, decision(foreign, "nobody (no agent mentioned, not a"))
        await s.gateway.nothing(0.3)
    assert decision(plain, "nobody (no agent mentioned, not a broadcast room)") in caplog.text


async def test_offline_agents_are_logged_and_counted(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """D12: the delivery to an agent whose gateway is gone is logged with the agent id."""
    async with routing_scene(hub, 1) as s:
        [online] = s.agents
        gone = Agent(f"agent-{new_id(8)}", agent_name())
        async with signed_in_gateway(hub, s.owner) as other:
            await other.register(gone.id, gone.name)
        await wait_disconnected(hub, other.gateway_id)
        await add_agent_to_room(hub, s.room_id, gone.id)
        before = sum(hub.services.metrics.undeliverable_total.values.values())
        sent = await send_user_message(s, f"@{gone.name} @{online.name} go")
        [delivery] = await deliveries(s.gateway, 1)
        assert (delivery["agentId"], delivery["messageId"]) == (online.id, sent["id"])
        await wait_logged(caplog, f"Agent {gone.id} is offline; message {sent['id']} not delivered")
        await s.gateway.nothing(0.3)
    assert sum(hub.services.metrics.undeliverable_total.values.values()) == before + 1


# agent replies: chains (§3.6) -----------------------------------------------------------------
async def test_agent_mentions_route_on_with_the_conversation_and_depth(hub: RunningHub) -> None:
    async with routing_scene(hub, 3) as s:
        a, b, c = s.agents
        conversation_id = new_id()
        content = f"@{a.name} (me) asks @{b.name} and @{c.name}"
        reply = await complete(s, a, content, conversationId=conversation_id, depth=2)
        to_b, to_c = await deliveries(s.gateway, 2)
        assert to_b == {
            "type": "server:send_to_agent", "agentId": b.id, "roomId": s.room_id,
            "messageId": reply["id"], "content": content, "senderName": a.name,
            "senderType": "agent", "routingMode": "direct", "conversationId": conversation_id,
            "depth": 3,
        }  # fmt: skip
        assert to_c == {**to_b, "agentId": c.id}
        await s.gateway.nothing(0.3)  # never to the sender itself


async def test_a_reply_without_conversation_starts_one_at_depth_one(hub: RunningHub) -> None:
    async with routing_scene(hub, 2) as s:
        a, b = s.agents
        await complete(s, a, f"@{b.name} over to you")
        [delivery] = await deliveries(s.gateway, 1)
        assert delivery["conversationId"] and delivery["depth"] == 1
        await complete(s, a, f"@{b.name} again", conversationId="")
        [again] = await deliveries(s.gateway, 1)
        assert again["conversationId"] not in ("", delivery["conversationId"])


async def test_user_to_a_to_b_to_a_is_stopped_by_loop_detection(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(hub, 3) as s:
        a, b, c = s.agents
        await send_user_message(s, f"@{a.name} start")
        [to_a] = await deliveries(s.gateway, 1)
        cid = to_a["conversationId"]
        await complete(s, a, f"@{b.name} your turn", conversationId=cid, depth=to_a["depth"])
        [to_b] = await deliveries(s.gateway, 1)
        assert (to_b["agentId"], to_b["depth"]) == (b.id, 1)
        # A target is marked visited only once it replies: C may hand over to B as well.
        await complete(s, c, f"@{b.name} too", conversationId=cid, depth=1)
        [again] = await deliveries(s.gateway, 1)
        assert (again["agentId"], again["conversationId"]) == (b.id, cid)
        await complete(s, b, f"back to @{a.name}", conversationId=cid, depth=to_b["depth"])
        await wait_logged(caplog, f"Agent {a.id} already visited in conversation {cid}, skipping")
        await s.gateway.nothing(0.3)
    assert await hub.services.kv.smembers(f"conv:{cid}:visited") == {a.id, b.id, c.id}


async def test_visited_sets_expire_within_five_minutes(hub: RunningHub) -> None:
    async with routing_scene(hub, 2) as s:
        a, b = s.agents
        cid = new_id()
        await complete(s, a, f"@{b.name} hi", conversationId=cid)
        await deliveries(s.gateway, 1)
    keys = await hub.services.kv.scan_keys("conv:*:visited")
    assert f"conv:{cid}:visited" in keys
    for key in keys:
        assert 0 < await hub.services.kv.ttl(key) <= 300


@pytest.fixture
async def shallow_hub(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> RunningHub:
    """MAX_AGENT_CHAIN_DEPTH=2."""
    return await start_hub(nursery, attrs.evolve(settings, max_agent_chain_depth=2), redis_prefix)


async def test_a_chain_stops_at_the_env_max_depth(
    shallow_hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(shallow_hub, 4) as s:
        a, b, c, d = s.agents
        await send_user_message(s, f"@{a.name} go")
        [hop] = await deliveries(s.gateway, 1)
        for sender, target in ((a, b), (b, c)):
            await complete(s, sender, f"@{target.name} next",
                           conversationId=hop["conversationId"], depth=hop["depth"])  # fmt: skip
            [hop] = await deliveries(s.gateway, 1)
            assert hop["agentId"] == target.id
        assert hop["depth"] == 2
        cid = hop["conversationId"]
        await complete(s, c, f"@{d.name} next", conversationId=cid, depth=2)
        await wait_logged(caplog, f"Chain depth 2 exceeds max 2 for conversation {cid}, stopping")
        await s.gateway.nothing(0.3)


async def test_the_room_router_sets_the_max_depth(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(hub, 2) as s:
        a, b = s.agents
        await set_room_router(s, maxChainDepth=1)
        await complete(s, a, f"@{b.name} ok", conversationId="c0", depth=0)
        await deliveries(s.gateway, 1)
        await complete(s, a, f"@{b.name} no", conversationId="c1", depth=1)
        await wait_logged(caplog, "Chain depth 1 exceeds max 1 for conversation c1, stopping")
        await s.gateway.nothing(0.3)


async def test_the_rate_limit_trips_after_the_router_max_and_the_message_stays(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(hub, 2) as s:
        a, b = s.agents
        await set_room_router(s, rateLimitMax=2, rateLimitWindow=60)
        cid = new_id()  # one chain: its hops are handled in order, so the third one trips
        replies = [
            await complete(s, a, f"@{b.name} part {i}", conversationId=cid) for i in range(3)
        ]
        routed = await deliveries(s.gateway, 2)
        assert [d["messageId"] for d in routed] == [r["id"] for r in replies[:2]]
        await wait_logged(caplog, f"Agent {a.id} rate limited, message saved but not routed")
        await s.gateway.nothing(0.3)
        assert decision(replies[2], f"nobody (agent {a.id} rate limited)") in caplog.text
    stored = await hub.services.db.fetch(
        "SELECT id, content FROM messages WHERE room_id = $1 AND sender_id = $2", s.room_id, a.id
    )
    assert sorted(r["id"] for r in stored) == sorted(r["id"] for r in replies)
    assert 0 < await hub.services.kv.ttl(f"ws:agent_rate:{a.id}") <= 60


# room context (§3.9): on register and on room changes, never with a delivery -----------------
async def test_room_context_on_register_and_room_update_not_on_routing(hub: RunningHub) -> None:
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner, name="Ops")
    agent = Agent(f"agent-{new_id(8)}", agent_name())
    async with signed_in(hub, owner) as client, signed_in_gateway(hub, owner) as gateway:
        await gateway.register(agent.id, agent.name)
        await add_agent_to_room(hub, room_id, agent.id)
        again = {"id": agent.id, "name": agent.name, "type": "generic"}  # now it is a member
        await gateway.send({"type": "gateway:register_agent", "agent": again})
        context = await gateway.receive_type("server:room_context")
        assert (context["agentId"], context["context"]["roomName"]) == (agent.id, "Ops")
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
            change = {"name": "Ops 2", "systemPrompt": "be brief"}
            response = await http.put(f"/api/rooms/{room_id}", headers=owner.headers, json=change)
            assert response.status_code == 200, response.text
        context = await gateway.receive_type("server:room_context")
        assert context["context"]["roomName"] == "Ops 2"
        assert context["context"]["systemPrompt"] == "be brief"
        await client.join(room_id)
        scene = Scene(hub, owner, room_id, [agent], client, gateway)
        await send_user_message(scene, f"@{agent.name} hi")
        frame = await gateway.receive()
        assert frame["type"] == "server:send_to_agent"
        await gateway.nothing(0.3)
