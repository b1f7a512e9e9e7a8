"""head-gap B24/B19: `targetAgentName` on a gateway reply (631a1ad's MCP send_message and
request_reply tools) routes it to that agent of the room without an @mention, under the chain
rules of mention routing, and the message carries `metadata.targetAgentName`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agentim.protocol.ids import new_id
from tests.e2e.conftest import SpawnHub
from tests.gateway.test_routing import (
    Agent,
    Scene,
    complete,
    deliveries,
    routing_scene,
    wait_logged,
)
from tests.gateway_helpers import add_agent_to_room, agent_name, signed_in_gateway
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import connect


async def stored_metadata(hub: RunningHub, message_id: str) -> Any:
    text = await hub.services.db.fetchval("SELECT metadata FROM messages WHERE id = $1",
                                          message_id)  # fmt: skip
    return json.loads(text) if text is not None else None


async def history_entry(s: Scene, message_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=s.hub.url, timeout=30) as http:
        response = await http.get(f"/api/messages/rooms/{s.room_id}", headers=s.owner.headers)
    assert response.status_code == 200, response.text
    [entry] = [m for m in response.json()["data"]["items"] if m["id"] == message_id]
    return entry  # type: ignore[no-any-return]


async def test_a_targeted_reply_reaches_the_named_agent_one_hop_deeper(hub: RunningHub) -> None:
    async with routing_scene(hub, 3) as s:
        a, b, c = s.agents
        conversation_id = new_id()
        content = f"Please review the patch (not @{c.name})"  # the target wins over mentions
        reply = await complete(s, a, content, conversationId=conversation_id, depth=1,
                               targetAgentName=b.name)  # fmt: skip
        assert reply["metadata"] == {"targetAgentName": b.name}
        [delivery] = await deliveries(s.gateway, 1)
        assert delivery == {
            "type": "server:send_to_agent", "agentId": b.id, "roomId": s.room_id,
            "messageId": reply["id"], "content": content, "senderName": a.name,
            "senderType": "agent", "routingMode": "direct", "conversationId": conversation_id,
            "depth": 2,
        }  # fmt: skip
        await s.gateway.nothing(0.3)
        assert await stored_metadata(hub, reply["id"]) == {"targetAgentName": b.name}
        assert (await history_entry(s, reply["id"]))["metadata"] == {"targetAgentName": b.name}


async def test_a_reply_without_target_has_no_metadata(hub: RunningHub) -> None:
    async with routing_scene(hub, 1) as s:
        [a] = s.agents
        reply = await complete(s, a, "plain")
        assert "metadata" not in reply
        assert await stored_metadata(hub, reply["id"]) is None
        assert "metadata" not in await history_entry(s, reply["id"])


async def test_a_targeted_reply_over_the_max_depth_goes_nowhere(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(hub, 2) as s:
        a, b = s.agents
        max_depth = hub.services.settings.max_agent_chain_depth
        await complete(s, a, "deep", conversationId=new_id(), depth=max_depth,
                       targetAgentName=b.name)  # fmt: skip
        await wait_logged(caplog, f"Chain depth {max_depth} exceeds max {max_depth}")
        await s.gateway.nothing(0.3)


async def test_a_targeted_reply_obeys_loop_detection_and_membership(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    async with routing_scene(hub, 2) as s:
        a, b = s.agents
        conversation_id = new_id()
        await complete(s, a, "to b", conversationId=conversation_id, targetAgentName=b.name)
        [to_b] = await deliveries(s.gateway, 1)
        back = await complete(s, b, "back to a", conversationId=conversation_id, depth=1,
                              targetAgentName=a.name)  # fmt: skip
        await wait_logged(caplog, f"Agent {a.id} already visited in conversation {conversation_id}")
        outsider = Agent(f"agent-{new_id(8)}", agent_name())
        await s.gateway.register(outsider.id, outsider.name)  # not in the room
        await complete(s, a, "to an outsider", targetAgentName=outsider.name)
        await complete(s, a, "to itself", targetAgentName=a.name)
        await s.gateway.nothing(0.3)
    assert to_b["agentId"] == b.id and back["metadata"] == {"targetAgentName": a.name}


async def test_targeted_routing_across_processes(hub: RunningHub, spawn_hub: SpawnHub) -> None:
    """D15: agent A's gateway on process 1, agent B's and the client on process 2."""
    one, two = await spawn_hub(), await spawn_hub()
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    a, b = (Agent(f"agent-{new_id(8)}", agent_name()) for _ in range(2))
    async with (
        signed_in_gateway(one.ws_url, owner) as gateway_a,
        signed_in_gateway(two.ws_url, owner) as gateway_b,
        connect(two.ws_url) as client,
    ):  # fmt: skip
        assert (await client.auth(owner))["ok"] is True
        for gateway, agent in ((gateway_a, a), (gateway_b, b)):
            await gateway.register(agent.id, agent.name)
            await add_agent_to_room(hub, room_id, agent.id)
        await client.join(room_id)
        await gateway_a.complete(room_id, a.id, new_id(), "over to you", targetAgentName=b.name)
        shown = (await client.receive_type("server:message_complete"))["message"]
        assert shown["metadata"] == {"targetAgentName": b.name}
        delivery = await gateway_b.receive_type("server:send_to_agent")
        assert (delivery["agentId"], delivery["messageId"], delivery["depth"]) == (
            b.id, shown["id"], 1)  # fmt: skip
