"""A client on hub process A and the agent's gateway on process B work as on one hub (D15)."""

from __future__ import annotations

import httpx

from agentim.protocol.ids import new_id
from tests.e2e.conftest import SpawnHub
from tests.gateway_helpers import (
    add_agent_to_room,
    agent_name,
    signed_in_gateway,
)
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import connect


async def test_client_on_a_and_gateway_on_b(hub: RunningHub, spawn_hub: SpawnHub) -> None:
    a, b = await spawn_hub(), await spawn_hub()
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent_id, name = f"agent-{new_id(8)}", agent_name()
    async with connect(a.ws_url) as client, signed_in_gateway(b.ws_url, owner) as gateway:
        assert (await client.auth(owner))["ok"] is True
        await gateway.register(agent_id, name)
        await add_agent_to_room(hub, room_id, agent_id)
        await client.join(room_id)

        await client.send({"type": "client:send_message", "roomId": room_id,
                           "content": f"@{name} build it"})  # fmt: skip
        sent = (await client.receive_type("server:new_message"))["message"]
        delivery = await gateway.receive_type("server:send_to_agent")
        assert (delivery["agentId"], delivery["messageId"]) == (agent_id, sent["id"])
        message_id = delivery["messageId"]
        parts = [f"{i} " for i in range(5)]
        await gateway.stream_reply(room_id, agent_id, message_id, parts)
        chunks = [await client.receive_type("server:message_chunk") for _ in parts]
        assert [c["chunk"]["content"] for c in chunks] == parts
        complete = (await client.receive_type("server:message_complete"))["message"]
        assert complete["content"] == "".join(parts)

        await client.send({"type": "client:stop_generation", "roomId": room_id,
                           "agentId": agent_id})  # fmt: skip
        assert (await gateway.receive_type("server:stop_agent"))["agentId"] == agent_id

        request_id = new_id()
        await gateway.send({"type": "gateway:permission_request", "requestId": request_id,
                            "agentId": agent_id, "roomId": room_id, "toolName": "Bash",
                            "toolInput": {}})  # fmt: skip
        await client.receive_type("server:permission_request")
        await client.send({"type": "client:permission_response", "requestId": request_id,
                           "decision": "deny"})  # fmt: skip
        answer = await gateway.receive_type("server:permission_response")
        assert (answer["requestId"], answer["decision"]) == (request_id, "deny")

        async with httpx.AsyncClient(base_url=a.url, timeout=30) as http:
            response = await http.delete(f"/api/agents/{agent_id}", headers=owner.headers)
            assert response.status_code == 200, response.text
        removed = await gateway.receive_type("server:remove_agent")
        assert removed == {"type": "server:remove_agent", "agentId": agent_id}
