"""Every client ↔ gateway relay with the client on hub process A and the gateway on B (D15):
requests cross as events, answers come back to the requesting user's socket on the other
process, and "offline" is decided from Redis, not from one process's sockets."""

from __future__ import annotations

import httpx

from agentim.protocol.ids import new_id
from tests.e2e.conftest import SpawnHub
from tests.gateway_helpers import (
    add_agent_to_room,
    agent_name,
    signed_in_gateway,
    wait_disconnected,
)
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import connect


async def test_agent_relays_across_processes(hub: RunningHub, spawn_hub: SpawnHub) -> None:
    a, b = await spawn_hub(), await spawn_hub()
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent_id, name = f"agent-{new_id(8)}", agent_name()
    async with (
        connect(a.ws_url) as client,
        signed_in_gateway(b.ws_url, owner) as gateway,
    ):
        assert (await client.auth(owner))["ok"] is True
        await gateway.register(agent_id, name, capabilities=["rewind"])
        await add_agent_to_room(hub, room_id, agent_id)
        await client.join(room_id)

        # agent command and its result (B3, B11)
        await client.send({"type": "client:agent_command", "agentId": agent_id,
                           "roomId": room_id, "command": "cost", "args": ""})  # fmt: skip
        command = await gateway.receive_type("server:agent_command")
        assert (command["command"], command["userId"]) == ("cost", owner.id)
        await gateway.send({"type": "gateway:agent_command_result", "agentId": agent_id,
                            "roomId": room_id, "command": "cost", "success": True,
                            "message": "$0.10"})  # fmt: skip
        result = await client.receive_type("server:agent_command_result")
        assert (result["success"], result["message"]) == (True, "$0.10")

        # agent info (B4, B10, B21)
        await client.send({"type": "client:query_agent_info", "agentId": agent_id,
                           "roomId": room_id})  # fmt: skip
        assert (await gateway.receive_type("server:query_agent_info"))["roomId"] == room_id
        await gateway.send({"type": "gateway:agent_info", "agentId": agent_id, "roomId": room_id,
                            "slashCommands": [], "mcpServers": [], "model": "opus"})  # fmt: skip
        info = (await client.receive_type("server:agent_info"))["agent"]
        assert (info["id"], info["model"]) == (agent_id, "opus")

        # workspace (B5, B12): the request id is matched in Redis by process B
        await client.send({"type": "client:request_workspace", "roomId": room_id,
                           "agentId": agent_id, "request": {"kind": "tree"}})  # fmt: skip
        request = await gateway.receive_type("server:request_workspace")
        tree = {"kind": "tree", "path": ".", "entries": [{"name": "src", "type": "directory"}]}
        await gateway.send({"type": "gateway:workspace_response", "agentId": agent_id,
                            "requestId": request["requestId"], "response": tree})  # fmt: skip
        answer = await client.receive_type("server:workspace_response")
        assert (answer["requestId"], answer["response"]) == (request["requestId"], tree)

        # rewind (B6, B14)
        await client.send({"type": "client:send_message", "roomId": room_id, "content": "undo"})
        sent = (await client.receive_type("server:new_message"))["message"]
        await client.send({"type": "client:rewind_room", "roomId": room_id,
                           "messageId": sent["id"]})  # fmt: skip
        assert (await gateway.receive_type("server:rewind_agent"))["messageId"] == sent["id"]
        rewound = await client.receive_type("server:room_rewound")
        assert rewound["removedMessageIds"] == [sent["id"]]

    await wait_disconnected(hub, gateway.gateway_id)
    async with connect(a.ws_url) as client:
        assert (await client.auth(owner))["ok"] is True
        await client.send({"type": "client:agent_command", "agentId": agent_id,
                           "roomId": room_id, "command": "cost"})  # fmt: skip
        offline = await client.receive_type("server:agent_command_result")
        assert (offline["success"], offline["message"]) == (False, "Agent is offline")
        await client.send({"type": "client:query_agent_info", "agentId": agent_id})
        assert (await client.receive_type("server:agent_info"))["agent"]["status"] == "offline"


async def test_gateway_relays_across_processes(hub: RunningHub, spawn_hub: SpawnHub) -> None:
    a, b = await spawn_hub(), await spawn_hub()
    owner = await signed_in_user(hub)
    async with (
        connect(a.ws_url) as client,
        signed_in_gateway(b.ws_url, owner) as gateway,
        httpx.AsyncClient(base_url=a.url, timeout=30) as http,
    ):
        assert (await client.auth(owner))["ok"] is True
        gw = gateway.gateway_id

        # credentials (B7, B16)
        await client.send({"type": "client:list_gateway_credentials", "gatewayId": gw,
                           "agentType": "codex"})  # fmt: skip
        listed = await gateway.receive_type("server:list_credentials")
        await gateway.send({"type": "gateway:credential_list", "requestId": listed["requestId"],
                            "agentType": "codex", "credentials": []})  # fmt: skip
        assert (await client.receive_type("server:gateway_credential_list"))["gatewayId"] == gw
        await client.send({"type": "client:add_gateway_credential", "gatewayId": gw,
                           "agentType": "codex", "name": "k", "apiKey": "sk-1"})  # fmt: skip
        added = await gateway.receive_type("server:add_credential")
        await client.send({"type": "client:manage_gateway_credential", "gatewayId": gw,
                           "agentType": "codex", "credentialId": "c1",
                           "action": "delete"})  # fmt: skip
        assert (await gateway.receive_type("server:manage_credential"))["action"] == "delete"
        await gateway.send({"type": "gateway:credential_result", "requestId": added["requestId"],
                            "success": True})  # fmt: skip
        done = await client.receive_type("server:gateway_credential_result")
        assert (done["requestId"], done["success"]) == (added["requestId"], True)

        # subscription OAuth
        await client.send({"type": "client:start_gateway_oauth", "gatewayId": gw,
                           "agentType": "codex", "credentialName": "sub"})  # fmt: skip
        started = await gateway.receive_type("server:start_oauth")
        await gateway.send({"type": "gateway:oauth_url", "requestId": started["requestId"],
                            "authUrl": "https://auth.example/x"})  # fmt: skip
        url = await client.receive_type("server:gateway_oauth_url")
        assert (url["requestId"], url["authUrl"]) == (
            started["requestId"],
            "https://auth.example/x",
        )
        await client.send({"type": "client:complete_gateway_oauth", "gatewayId": gw,
                           "requestId": started["requestId"],
                           "callbackUrl": "http://localhost/cb?code=1"})  # fmt: skip
        assert (await gateway.receive_type("server:complete_oauth"))["requestId"] == url[
            "requestId"
        ]
        await gateway.send({"type": "gateway:oauth_result", "requestId": started["requestId"],
                            "success": True,
                            "credential": {"id": "c9", "name": "sub"}})  # fmt: skip
        assert (await client.receive_type("server:gateway_oauth_result"))["credential"] == {
            "id": "c9", "name": "sub"}  # fmt: skip

        # spawn (A13, B15): the HTTP request on A, the gateway on B
        response = await http.post("/api/agents/spawn", headers=owner.headers,
                                   json={"gatewayId": gw, "agentType": "codex",
                                         "name": "helper"})  # fmt: skip
        assert response.status_code == 200, response.text
        spawn = await gateway.receive_type("server:spawn_agent")
        await gateway.send({"type": "gateway:spawn_result", "requestId": spawn["requestId"],
                            "success": True, "agentId": "agent-new"})  # fmt: skip
        spawned = await client.receive_type("server:spawn_result")
        assert (spawned["gatewayId"], spawned["agentId"]) == (gw, "agent-new")

    await wait_disconnected(hub, gateway.gateway_id)
    async with (
        connect(a.ws_url) as client,
        httpx.AsyncClient(base_url=a.url, timeout=30) as http,
    ):
        assert (await client.auth(owner))["ok"] is True
        await client.send({"type": "client:list_gateway_credentials", "gatewayId": gw,
                           "agentType": "codex"})  # fmt: skip
        assert (await client.receive_type("server:error"))["code"] == "GATEWAY_OFFLINE"
        response = await http.post("/api/agents/spawn", headers=owner.headers,
                                   json={"gatewayId": gw, "agentType": "codex",
                                         "name": "helper"})  # fmt: skip
        assert response.status_code == 503
