"""Relays between clients and gateways over real sockets on one hub (head-gap B3-B7, B10-B16,
B21-B22, A13): the request reaches the gateway, the answer reaches the user who asked, and
every check (membership, ownership, role, offline) answers as the reference does."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest

from agentim.protocol.ids import new_id
from tests.gateway_helpers import (
    Gateway,
    add_agent_to_room,
    agent_name,
    signed_in_gateway,
    wait_disconnected,
)
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.ws.wsclient import Client, signed_in


@attrs.frozen
class Setup:
    owner: User
    member: User
    room_id: str
    agent_id: str
    name: str


async def _setup(hub: RunningHub) -> Setup:
    owner, member = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner, members=(member,))
    return Setup(owner, member, room_id, f"agent-{new_id(8)}", agent_name())


@asynccontextmanager
async def _online(
    hub: RunningHub, s: Setup, **agent: Any
) -> AsyncIterator[tuple[Gateway, Client, Client]]:
    """The agent registered on the owner's gateway and in the room; both users joined."""
    async with (
        signed_in_gateway(hub, s.owner) as gateway,
        signed_in(hub, s.owner) as owner,
        signed_in(hub, s.member) as member,
    ):
        await gateway.register(s.agent_id, s.name, **agent)
        await add_agent_to_room(hub, s.room_id, s.agent_id)
        await owner.join(s.room_id)
        await member.join(s.room_id)
        yield gateway, owner, member


async def _frames_until_marker(client: Client, marker: str) -> list[dict[str, Any]]:
    """Every frame before the room message `marker` (events arrive in publish order)."""
    frames = []
    while True:
        frame = await client.receive()
        if frame["type"] == "server:new_message" and frame["message"]["content"] == marker:
            return frames
        frames.append(frame)


async def _marker(client: Client, room_id: str) -> str:
    text = f"marker {new_id(6)}"
    await client.send({"type": "client:send_message", "roomId": room_id, "content": text})
    return text


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "server:error", "code": code, "message": message}


async def _set_role(hub: RunningHub, room_id: str, role: str) -> None:
    await hub.services.db.execute(
        "UPDATE rooms SET agent_command_role = $2 WHERE id = $1", room_id, role
    )


# agent commands (B3, B11) --------------------------------------------------------------------
async def test_agent_command_reaches_the_gateway_and_its_result_only_the_sender(
    hub: RunningHub,
) -> None:
    s = await _setup(hub)
    async with _online(hub, s) as (gateway, owner, member):
        await member.send({"type": "client:agent_command", "agentId": s.agent_id,
                           "roomId": s.room_id, "command": "model", "args": "opus"})  # fmt: skip
        command = await gateway.receive_type("server:agent_command")
        assert command == {"type": "server:agent_command", "agentId": s.agent_id,
                           "roomId": s.room_id, "command": "model", "args": "opus",
                           "userId": s.member.id}  # fmt: skip
        await gateway.send({"type": "gateway:agent_command_result", "agentId": s.agent_id,
                            "roomId": s.room_id, "command": "model", "success": True,
                            "message": "Model set to opus"})  # fmt: skip
        result = await member.receive_type("server:agent_command_result")
        assert result == {"type": "server:agent_command_result", "agentId": s.agent_id,
                          "roomId": s.room_id, "command": "model", "success": True,
                          "message": "Model set to opus"}  # fmt: skip
        marker = await _marker(member, s.room_id)
        seen = await _frames_until_marker(owner, marker)
        assert "server:agent_command_result" not in [f["type"] for f in seen]


async def test_agent_command_to_an_offline_agent_fails_at_once(hub: RunningHub) -> None:
    s = await _setup(hub)
    await hub.services.db.execute(
        "INSERT INTO gateways (id, user_id, name, created_at) VALUES ($1, $2, 'gw', 'x')",
        f"gw-{s.agent_id}", s.owner.id,
    )  # fmt: skip
    await hub.services.db.execute(
        "INSERT INTO agents (id, name, type, gateway_id, created_at, updated_at) "
        "VALUES ($1, $2, 'generic', $3, 'x', 'x')",
        s.agent_id, s.name, f"gw-{s.agent_id}",
    )  # fmt: skip
    await add_agent_to_room(hub, s.room_id, s.agent_id)
    async with signed_in(hub, s.member) as member:
        await member.send({"type": "client:agent_command", "agentId": s.agent_id,
                           "roomId": s.room_id, "command": "clear"})  # fmt: skip
        assert await member.receive_type("server:agent_command_result") == {
            "type": "server:agent_command_result", "agentId": s.agent_id, "roomId": s.room_id,
            "command": "clear", "success": False, "message": "Agent is offline",
        }  # fmt: skip


async def test_agent_command_checks_membership_and_the_rooms_command_role(
    hub: RunningHub,
) -> None:
    s = await _setup(hub)
    stranger = await signed_in_user(hub)
    async with _online(hub, s) as (gateway, owner, member), signed_in(hub, stranger) as other:
        frame = {"type": "client:agent_command", "agentId": s.agent_id, "roomId": s.room_id,
                 "command": "clear", "args": ""}  # fmt: skip
        await other.send(frame)
        assert await other.receive_type("server:error") == _error(
            "NOT_A_MEMBER", "You are not a member of this room"
        )
        await member.send({**frame, "agentId": "agent-elsewhere"})
        assert await member.receive_type("server:error") == _error(
            "NOT_A_MEMBER", "Agent is not a member of this room"
        )
        await _set_role(hub, s.room_id, "admin")
        await member.send(frame)
        assert await member.receive_type("server:error") == _error(
            "PERMISSION_DENIED", "Insufficient permissions to command agents in this room"
        )
        await owner.send(frame)
        assert (await gateway.receive_type("server:agent_command"))["userId"] == s.owner.id
        await gateway.nothing(ignore=("server:pong",))  # the member's commands never went out


async def test_a_result_nobody_waits_for_goes_to_the_room(hub: RunningHub) -> None:
    s = await _setup(hub)
    async with _online(hub, s) as (gateway, owner, member):
        await gateway.send({"type": "gateway:agent_command_result", "agentId": s.agent_id,
                            "roomId": s.room_id, "command": "compact",
                            "success": False})  # fmt: skip
        expected = {"type": "server:agent_command_result", "agentId": s.agent_id,
                    "roomId": s.room_id, "command": "compact", "success": False}  # fmt: skip
        assert await owner.receive_type("server:agent_command_result") == expected
        assert await member.receive_type("server:agent_command_result") == expected


# agent info (B4, B10, B21) -------------------------------------------------------------------
async def test_query_agent_info_asks_the_gateway_and_its_answer_reaches_the_room(
    hub: RunningHub,
) -> None:
    s = await _setup(hub)
    async with _online(hub, s) as (gateway, owner, member):
        await member.send({"type": "client:query_agent_info", "agentId": s.agent_id,
                           "roomId": s.room_id})  # fmt: skip
        query = await gateway.receive_type("server:query_agent_info")
        assert query == {"type": "server:query_agent_info", "agentId": s.agent_id,
                         "roomId": s.room_id}  # fmt: skip
        commands = [{"name": "model", "description": "Switch model", "usage": "/model <m>",
                     "source": "builtin", "extra": 1}]  # fmt: skip
        await gateway.send({"type": "gateway:agent_info", "agentId": s.agent_id,
                            "roomId": s.room_id, "slashCommands": commands,
                            "mcpServers": ["fs"], "model": "opus", "sessionCostUSD": 0.25,
                            "planMode": False, "permissionLevel": "bypass",
                            "availableModelInfo": [{"value": "opus", "displayName": "Opus"}],
                            "unknownField": "dropped"})  # fmt: skip
        for client in (owner, member):
            agent = (await client.receive_type("server:agent_info"))["agent"]
            assert (agent["id"], agent["name"], agent["status"]) == (s.agent_id, s.name, "online")
            assert agent["slashCommands"] == [{k: v for k, v in commands[0].items()
                                               if k != "extra"}]  # fmt: skip
            assert (agent["mcpServers"], agent["model"], agent["sessionCostUSD"]) == (
                ["fs"], "opus", 0.25)  # fmt: skip
            assert (agent["planMode"], agent["permissionLevel"]) == (False, "bypass")
            assert agent["availableModelInfo"] == [{"value": "opus", "displayName": "Opus"}]
            assert "unknownField" not in agent and agent["deviceInfo"]["hostname"] == "box"


async def test_agent_info_without_a_room_goes_to_every_room_of_the_agent(
    hub: RunningHub,
) -> None:
    s = await _setup(hub)
    second = await create_room(hub, s.member)
    await add_agent_to_room(hub, second, s.agent_id)
    async with _online(hub, s) as (gateway, owner, member):
        await member.join(second)
        await gateway.send({"type": "gateway:agent_info", "agentId": s.agent_id,
                            "slashCommands": [], "mcpServers": []})  # fmt: skip
        first = await member.receive_type("server:agent_info")
        again = await member.receive_type("server:agent_info")
        assert first == again and first["agent"]["slashCommands"] == []
        assert await owner.receive_type("server:agent_info") == first  # joined to one room
        # a gateway cannot speak for an agent it does not hold
        await gateway.send({"type": "gateway:agent_info", "agentId": "agent-not-mine",
                            "slashCommands": [], "mcpServers": []})  # fmt: skip
        marker = await _marker(owner, s.room_id)
        assert "server:agent_info" not in [
            f["type"] for f in await _frames_until_marker(owner, marker)
        ]


async def test_query_agent_info_of_an_offline_agent_answers_from_the_database(
    hub: RunningHub,
) -> None:
    s = await _setup(hub)
    stranger = await signed_in_user(hub)
    async with signed_in_gateway(hub, s.owner) as gateway:
        await gateway.register(s.agent_id, s.name, capabilities=["rewind"])
        await add_agent_to_room(hub, s.room_id, s.agent_id)
    await wait_disconnected(hub, gateway.gateway_id)
    async with signed_in(hub, s.member) as member, signed_in(hub, stranger) as other:
        await member.send({"type": "client:query_agent_info", "agentId": s.agent_id})
        agent = (await member.receive_type("server:agent_info"))["agent"]
        assert (agent["id"], agent["status"], agent["capabilities"]) == (
            s.agent_id, "offline", ["rewind"])  # fmt: skip
        await other.send({"type": "client:query_agent_info", "agentId": s.agent_id})
        assert await other.receive_type("server:error") == _error(
            "INVALID_REQUEST", "Agent not found"
        )
        await other.send({"type": "client:query_agent_info", "agentId": s.agent_id,
                          "roomId": s.room_id})  # fmt: skip
        assert await other.receive_type("server:error") == _error(
            "NOT_A_MEMBER", "You are not a member of this room"
        )


# workspace (B5, B12) ---------------------------------------------------------------------------
async def test_workspace_answer_reaches_only_the_requester_once(hub: RunningHub) -> None:
    s = await _setup(hub)
    async with _online(hub, s) as (gateway, owner, member):
        await member.send({"type": "client:request_workspace", "roomId": s.room_id,
                           "agentId": s.agent_id,
                           "request": {"kind": "file", "path": "src/a.py", "x": 1}})  # fmt: skip
        request = await gateway.receive_type("server:request_workspace")
        request_id = request.pop("requestId")
        assert request == {"type": "server:request_workspace", "agentId": s.agent_id,
                           "roomId": s.room_id,
                           "request": {"kind": "file", "path": "src/a.py"}}  # fmt: skip
        assert 0 < await hub.services.kv.ttl(f"relay:req:{request_id}") <= 30
        answer = {"kind": "file", "path": "src/a.py", "content": "print(1)\n", "size": 9,
                  "truncated": False}  # fmt: skip
        frame = {"type": "gateway:workspace_response", "agentId": s.agent_id,
                 "requestId": request_id, "response": answer}  # fmt: skip
        await gateway.send(frame)
        await gateway.send(frame)  # a second answer finds nothing pending
        assert await member.receive_type("server:workspace_response") == {
            "type": "server:workspace_response", "agentId": s.agent_id,
            "requestId": request_id, "response": answer,
        }  # fmt: skip
        marker = await _marker(owner, s.room_id)
        assert "server:workspace_response" not in [
            f["type"] for f in await _frames_until_marker(member, marker)
        ]
        assert "server:workspace_response" not in [
            f["type"] for f in await _frames_until_marker(owner, marker)
        ]
        assert await hub.services.kv.get(f"relay:req:{request_id}") is None


async def test_workspace_request_to_an_offline_agent_answers_an_error(hub: RunningHub) -> None:
    s = await _setup(hub)
    async with signed_in_gateway(hub, s.owner) as gateway:
        await gateway.register(s.agent_id, s.name)
        await add_agent_to_room(hub, s.room_id, s.agent_id)
    await wait_disconnected(hub, gateway.gateway_id)
    async with signed_in(hub, s.member) as member:
        await member.send({"type": "client:request_workspace", "roomId": s.room_id,
                           "agentId": s.agent_id, "request": {"kind": "status"}})  # fmt: skip
        answer = await member.receive_type("server:workspace_response")
        assert answer["response"] == {"kind": "error", "message": "Agent is offline"}
        await member.send({"type": "client:request_workspace", "roomId": s.room_id,
                           "agentId": s.agent_id, "request": {"kind": "file"}})  # fmt: skip
        assert await member.receive_type("server:error") == _error(
            "INVALID_MESSAGE", "Invalid message format"
        )


# credentials and subscription OAuth (B7, B16) ---------------------------------------------------
async def test_credential_relays_reach_the_owners_gateway_and_answers_come_back(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    owner = await signed_in_user(hub)
    secret = f"sk-secret-{new_id(12)}"
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, owner) as client:
        gw = gateway.gateway_id
        caplog.set_level(logging.DEBUG)
        await client.send({"type": "client:list_gateway_credentials", "gatewayId": gw,
                           "agentType": "claude-code"})  # fmt: skip
        listed = await gateway.receive_type("server:list_credentials")
        assert listed == {"type": "server:list_credentials", "requestId": listed["requestId"],
                          "agentType": "claude-code"}  # fmt: skip
        info = {"id": "c1", "name": "Work", "mode": "api", "hasApiKey": True, "isDefault": True,
                "createdAt": "2026-01-01T00:00:00.000Z"}  # fmt: skip
        await gateway.send({"type": "gateway:credential_list", "requestId": listed["requestId"],
                            "agentType": "claude-code", "credentials": [info]})  # fmt: skip
        assert await client.receive_type("server:gateway_credential_list") == {
            "type": "server:gateway_credential_list", "gatewayId": gw, "agentType": "claude-code",
            "credentials": [{**info, "hasOAuthData": False}],
        }  # fmt: skip

        add = {"type": "client:add_gateway_credential", "gatewayId": gw,
               "agentType": "claude-code", "name": "Work"}  # fmt: skip
        await client.send(add)
        assert await client.receive_type("server:error") == _error(
            "INVALID_REQUEST", "API key is required for API mode credentials"
        )
        await client.send({**add, "apiKey": secret, "model": "opus"})
        added = await gateway.receive_type("server:add_credential")
        assert added == {"type": "server:add_credential", "requestId": added["requestId"],
                         "agentType": "claude-code", "name": "Work", "mode": "api",
                         "apiKey": secret, "model": "opus"}  # fmt: skip
        await gateway.send({"type": "gateway:credential_result",
                            "requestId": added["requestId"], "success": True,
                            "credential": {"id": "c2", "name": "Work"}})  # fmt: skip
        assert await client.receive_type("server:gateway_credential_result") == {
            "type": "server:gateway_credential_result", "requestId": added["requestId"],
            "success": True, "credential": {"id": "c2", "name": "Work"},
        }  # fmt: skip

        await client.send({"type": "client:manage_gateway_credential", "gatewayId": gw,
                           "agentType": "claude-code", "credentialId": "c2",
                           "action": "rename", "name": "Home"})  # fmt: skip
        managed = await gateway.receive_type("server:manage_credential")
        assert (managed["credentialId"], managed["action"], managed["name"]) == (
            "c2", "rename", "Home")  # fmt: skip

        await client.send({"type": "client:start_gateway_oauth", "gatewayId": gw,
                           "agentType": "claude-code", "credentialName": "Sub"})  # fmt: skip
        started = await gateway.receive_type("server:start_oauth")
        assert started == {"type": "server:start_oauth", "requestId": started["requestId"],
                           "agentType": "claude-code", "credentialName": "Sub"}  # fmt: skip
        auth_url = f"https://auth.example/authorize?state={new_id()}"
        await gateway.send({"type": "gateway:oauth_url", "requestId": started["requestId"],
                            "authUrl": auth_url, "autoCallback": True})  # fmt: skip
        assert await client.receive_type("server:gateway_oauth_url") == {
            "type": "server:gateway_oauth_url", "gatewayId": gw,
            "requestId": started["requestId"], "authUrl": auth_url, "autoCallback": True,
        }  # fmt: skip
        callback = f"http://localhost/callback?code={new_id()}"
        await client.send({"type": "client:complete_gateway_oauth", "gatewayId": gw,
                           "requestId": started["requestId"], "callbackUrl": callback})  # fmt: skip
        assert await gateway.receive_type("server:complete_oauth") == {
            "type": "server:complete_oauth", "requestId": started["requestId"],
            "callbackUrl": callback,
        }  # fmt: skip
        await gateway.send({"type": "gateway:oauth_result", "requestId": started["requestId"],
                            "success": False, "error": "denied"})  # fmt: skip
        assert await client.receive_type("server:gateway_oauth_result") == {
            "type": "server:gateway_oauth_result", "gatewayId": gw,
            "requestId": started["requestId"], "success": False, "error": "denied",
        }  # fmt: skip
        for text in (secret, auth_url, callback):
            assert text not in caplog.text


async def test_credential_relays_only_for_the_owner_of_a_connected_gateway(
    hub: RunningHub,
) -> None:
    owner, other = await signed_in_user(hub), await signed_in_user(hub)
    async with signed_in_gateway(hub, owner) as gateway:
        pass
    await wait_disconnected(hub, gateway.gateway_id)
    listing = {"type": "client:list_gateway_credentials", "gatewayId": gateway.gateway_id,
               "agentType": "codex"}  # fmt: skip
    oauth = {"type": "client:start_gateway_oauth", "gatewayId": gateway.gateway_id,
             "agentType": "codex", "credentialName": "Sub"}  # fmt: skip
    async with signed_in(hub, owner) as client, signed_in(hub, other) as intruder:
        await intruder.send(listing)
        assert await intruder.receive_type("server:error") == _error(
            "GATEWAY_NOT_FOUND", "Gateway not found"
        )
        await client.send({**listing, "gatewayId": "gw-nobody"})
        assert await client.receive_type("server:error") == _error(
            "GATEWAY_NOT_FOUND", "Gateway not found"
        )
        await client.send(listing)
        assert await client.receive_type("server:error") == _error(
            "GATEWAY_OFFLINE", "Gateway is offline"
        )
        await client.send(oauth)
        failed = await client.receive_type("server:gateway_oauth_result")
        assert failed == {"type": "server:gateway_oauth_result",
                          "gatewayId": gateway.gateway_id, "requestId": failed["requestId"],
                          "success": False, "error": "Gateway is offline"}  # fmt: skip


# spawn (A13, B15) --------------------------------------------------------------------------------
async def test_spawn_reaches_the_gateway_and_its_result_the_owner(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, other = await signed_in_user(hub), await signed_in_user(hub)
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, owner) as socket:
        body = {"gatewayId": gateway.gateway_id, "agentType": "claude-code", "name": "helper",
                "workingDirectory": "/src"}  # fmt: skip
        response = await client.post("/api/agents/spawn", headers=owner.headers, json=body)
        assert (response.status_code, response.json()) == (200, {"ok": True})
        spawn = await gateway.receive_type("server:spawn_agent")
        assert spawn == {"type": "server:spawn_agent", "requestId": spawn["requestId"],
                         "agentType": "claude-code", "name": "helper",
                         "workingDirectory": "/src"}  # fmt: skip
        choices = [{"id": "c1", "name": "Work", "mode": "api", "isDefault": False}]
        await gateway.send({"type": "gateway:spawn_result", "requestId": spawn["requestId"],
                            "success": False, "error": "CREDENTIAL_SELECTION_REQUIRED",
                            "credentials": choices})  # fmt: skip
        assert await socket.receive_type("server:spawn_result") == {
            "type": "server:spawn_result", "requestId": spawn["requestId"],
            "gatewayId": gateway.gateway_id, "success": False,
            "error": "CREDENTIAL_SELECTION_REQUIRED", "credentials": choices,
        }  # fmt: skip
        response = await client.post("/api/agents/spawn", headers=other.headers, json=body)
        assert (response.status_code, response.json()) == (
            404, {"ok": False, "error": "Gateway not found"})  # fmt: skip
    await wait_disconnected(hub, gateway.gateway_id)
    response = await client.post("/api/agents/spawn", headers=owner.headers, json=body)
    assert (response.status_code, response.json()) == (
        503, {"ok": False, "error": "Gateway is offline"})  # fmt: skip


MISSING = "Missing required fields: gatewayId, agentType, name"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"agentType": "codex", "name": "x"}, MISSING),
        ([1], MISSING),
        ({"gatewayId": 5, "agentType": "codex", "name": "x"}, MISSING),
        ({"gatewayId": "g", "agentType": "cursor", "name": "x"}, "Invalid agent type: cursor"),
        ({"gatewayId": "g", "agentType": "codex", "name": "   "},
         "Name must be 1-100 non-empty characters"),
        ({"gatewayId": "g", "agentType": "codex", "name": "n" * 101},
         "Name must be 1-100 non-empty characters"),
    ],
)  # fmt: skip
async def test_spawn_validation(
    hub: RunningHub, client: httpx.AsyncClient, body: Any, error: str
) -> None:
    user = await signed_in_user(hub)
    response = await client.post("/api/agents/spawn", headers=user.headers, json=body)
    assert (response.status_code, response.json()) == (400, {"ok": False, "error": error})


# rewind (B6, B14) --------------------------------------------------------------------------------
async def _say(client: Client, room_id: str, content: str) -> str:
    await client.send({"type": "client:send_message", "roomId": room_id, "content": content})
    while True:
        message = (await client.receive_type("server:new_message"))["message"]
        if message["content"] == content:
            return str(message["id"])


async def test_rewind_deletes_from_the_users_message_and_tells_agents_and_room(
    hub: RunningHub,
) -> None:
    s = await _setup(hub)
    async with _online(hub, s, capabilities=["rewind"]) as (gateway, owner, member):
        kept = await _say(owner, s.room_id, "kept")
        first = await _say(member, s.room_id, "first")
        second = await _say(owner, s.room_id, "second")
        await member.send({"type": "client:rewind_room", "roomId": s.room_id,
                           "messageId": second})  # fmt: skip
        assert await member.receive_type("server:error") == _error(
            "PERMISSION_DENIED", "You can only rewind to your own messages"
        )
        await member.send({"type": "client:rewind_room", "roomId": s.room_id,
                           "messageId": "no-such-message"})  # fmt: skip
        assert await member.receive_type("server:error") == _error(
            "INVALID_MESSAGE", "Message not found in this room"
        )
        await member.send({"type": "client:rewind_room", "roomId": s.room_id,
                           "messageId": first})  # fmt: skip
        rewound = {"type": "server:room_rewound", "roomId": s.room_id, "messageId": first,
                   "removedMessageIds": [first, second], "messageContent": "first"}  # fmt: skip
        assert await owner.receive_type("server:room_rewound") == rewound
        assert await member.receive_type("server:room_rewound") == rewound
        assert await gateway.receive_type("server:rewind_agent") == {
            "type": "server:rewind_agent", "agentId": s.agent_id, "roomId": s.room_id,
            "messageId": first,
        }  # fmt: skip
        await gateway.send({"type": "gateway:rewind_result", "agentId": s.agent_id,
                            "roomId": s.room_id, "success": True})  # fmt: skip
    rows = await hub.services.db.fetch(
        "SELECT id FROM messages WHERE room_id = $1 ORDER BY created_at", s.room_id
    )
    assert [r["id"] for r in rows] == [kept]


async def test_rewind_needs_every_agent_of_the_room_to_support_it(hub: RunningHub) -> None:
    s = await _setup(hub)
    async with _online(hub, s, capabilities=["terminal"]) as (_, _, member):
        first = await _say(member, s.room_id, "first")
        await member.send({"type": "client:rewind_room", "roomId": s.room_id,
                           "messageId": first})  # fmt: skip
        assert await member.receive_type("server:error") == _error(
            "PERMISSION_DENIED", f"Agent {s.agent_id} does not support rewind"
        )
    assert await hub.services.db.fetchval("SELECT count(*) FROM messages WHERE id = $1", first)


# agentCommandRole on messages (B8) ----------------------------------------------------------------
async def test_a_sender_below_the_command_role_is_stored_but_not_routed(hub: RunningHub) -> None:
    s = await _setup(hub)
    async with _online(hub, s) as (gateway, owner, member):
        await _set_role(hub, s.room_id, "admin")
        await member.send({"type": "client:send_message", "roomId": s.room_id,
                           "content": f"@{s.name} do it"})  # fmt: skip
        assert await member.receive_type("server:error") == _error(
            "PERMISSION_DENIED", "Insufficient permissions to command agents in this room"
        )
        stored = await hub.services.db.fetchval(
            "SELECT count(*) FROM messages WHERE room_id = $1 AND sender_id = $2",
            s.room_id, s.member.id,
        )  # fmt: skip
        assert stored == 1
        await owner.send({"type": "client:send_message", "roomId": s.room_id,
                          "content": f"@{s.name} owner asks"})  # fmt: skip
        delivery = await gateway.receive_type("server:send_to_agent")
        assert delivery["content"] == f"@{s.name} owner asks"  # the member's never arrived
        await owner.send({"type": "client:send_message", "roomId": s.room_id,
                          "content": "no error for the owner"})  # fmt: skip
        seen = await _frames_until_marker(owner, "no error for the owner")
        assert "server:error" not in [f["type"] for f in seen]


async def test_a_socket_that_authenticates_again_answers_only_to_its_new_gateway_id(
    hub: RunningHub,
) -> None:
    owner = await signed_in_user(hub)
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, owner) as client:
        first, second = gateway.gateway_id, f"gw-{new_id(10)}"
        gateway.gateway_id = second
        assert (await gateway.auth(owner))["ok"] is True
        for gateway_id in (first, second):
            await client.send({"type": "client:list_gateway_credentials",
                               "gatewayId": gateway_id, "agentType": "codex"})  # fmt: skip
        assert await client.receive_type("server:error") == _error(
            "GATEWAY_OFFLINE", "Gateway is offline"
        )
        assert (await gateway.receive_type("server:list_credentials"))["agentType"] == "codex"
        assert await hub.services.kv.get(f"gw:proc:{first}") is None
        assert await hub.services.kv.get(f"gw:proc:{second}") == hub.services.hub.process_id
