"""What a gateway reports about its agents (631a1ad: slash commands, MCP servers, model; the
agent type list) and `server:agents_changed` to the owner's clients (head-gap B9, B17, B23)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import trio

from agentim.protocol.ids import new_id
from tests.e2e.conftest import SpawnHub
from tests.gateway_helpers import (
    add_agent_to_room,
    agent_name,
    agent_row,
    signed_in_gateway,
)
from tests.helpers import RunningHub, create_room, signed_in_user
from tests.ws.wsclient import Client, connect, signed_in

COMMANDS = [
    {"name": "review", "description": "Review the diff", "usage": "/review [path]",
     "source": "skill"},
    {"name": "clear", "description": "", "usage": "/clear", "source": "builtin"},
]  # fmt: skip
CHANGED = {"type": "server:agents_changed"}


async def test_reported_fields_are_stored_and_broadcast(hub: RunningHub) -> None:
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent_id, name = f"agent-{new_id(8)}", agent_name()
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, owner) as watcher:
        await gateway.register(agent_id, name)
        await add_agent_to_room(hub, room_id, agent_id)
        await watcher.join(room_id)
        extra_key = {**COMMANDS[0], "hidden": True}  # unknown keys are dropped
        await gateway.register(agent_id, name, agent_type="claude-code",
                               slashCommands=[extra_key, COMMANDS[1]],
                               mcpServers=["github", "jira"], model="claude-opus")  # fmt: skip
        status = await watcher.receive_type("server:agent_status")
        assert status == {"type": "server:agent_status", "agent": {
            "id": agent_id, "name": name, "type": "claude-code", "status": "online",
            "slashCommands": COMMANDS, "mcpServers": ["github", "jira"],
            "model": "claude-opus"}}  # fmt: skip
        row = await agent_row(hub, agent_id)
        assert row is not None
        assert json.loads(row["slash_commands"]) == COMMANDS
        assert (json.loads(row["mcp_servers"]), row["model"]) == (["github", "jira"], "claude-opus")

        await gateway.register(agent_id, name)  # a later registration without them clears them
        status = await watcher.receive_type("server:agent_status")
        assert status["agent"] == {"id": agent_id, "name": name, "type": "generic",
                                   "status": "online"}  # fmt: skip
        row = await agent_row(hub, agent_id)
        assert row is not None and (row["slash_commands"], row["model"]) == (None, None)

        await gateway.send({"type": "gateway:agent_status", "agentId": agent_id,
                            "status": "busy"})  # fmt: skip
        busy = await watcher.receive_type("server:agent_status")
        assert "slashCommands" not in busy["agent"] and "model" not in busy["agent"]


def _agent(agent_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "gateway:register_agent",
            "agent": {"id": agent_id, "name": "n", "type": "generic", **extra}}  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "issue"),
    [
        ({"slashCommands": [COMMANDS[0]] * 101}, "Array must contain at most 100 element(s)"),
        ({"slashCommands": [{**COMMANDS[0], "name": ""}]},
         "String must contain at least 1 character(s)"),
        ({"slashCommands": [{**COMMANDS[0], "usage": "u" * 501}]},
         "String must contain at most 500 character(s)"),
        ({"slashCommands": [{**COMMANDS[0], "source": "plugin"}]},
         "Invalid enum value. Expected 'builtin' | 'skill', received 'plugin'"),
        ({"slashCommands": ["review"]}, "Expected object, received string"),
        ({"mcpServers": ["m"] * 101}, "Array must contain at most 100 element(s)"),
        ({"mcpServers": ["m" * 201]}, "String must contain at most 200 character(s)"),
        ({"mcpServers": [1]}, "Expected string, received number"),
        ({"model": "m" * 201}, "String must contain at most 200 character(s)"),
        ({"model": None}, "Expected string, received null"),
    ],
)  # fmt: skip
async def test_reported_fields_beyond_the_limits_refuse_the_registration(
    hub: RunningHub, caplog: pytest.LogCaptureFixture, extra: dict[str, Any], issue: str
) -> None:
    owner = await signed_in_user(hub)
    agent_id = f"agent-{new_id(8)}"
    async with signed_in_gateway(hub, owner) as gateway:
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await gateway.send(_agent(agent_id, **extra))
            await gateway.sync()
    assert f"Gateway sent invalid message format: {issue}" in caplog.text
    assert await agent_row(hub, agent_id) is None


async def test_an_old_gateways_cursor_agent_registers_as_generic(hub: RunningHub) -> None:
    owner = await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent_id = f"agent-{new_id(8)}"
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, owner) as watcher:
        await gateway.register(agent_id, "old")
        await add_agent_to_room(hub, room_id, agent_id)
        await watcher.join(room_id)
        await gateway.register(agent_id, "old", agent_type="cursor")
        status = await watcher.receive_type("server:agent_status")
        assert status["agent"]["type"] == "generic"
    assert (await agent_row(hub, agent_id) or {})["type"] == "generic"


async def test_agents_changed_reaches_the_owners_clients_only(hub: RunningHub) -> None:
    owner, other = await signed_in_user(hub), await signed_in_user(hub)
    agent_id = f"agent-{new_id(8)}"
    async with (
        signed_in(hub, owner) as first,
        signed_in(hub, owner) as second,
        signed_in(hub, other) as bystander,
    ):
        async with signed_in_gateway(hub, owner) as gateway:  # authenticated
            for client in (first, second):
                assert await client.receive_type(CHANGED["type"]) == CHANGED
            await gateway.register(agent_id, agent_name())
            for client in (first, second):
                assert await client.receive_type(CHANGED["type"]) == CHANGED
            await gateway.send({"type": "gateway:unregister_agent", "agentId": agent_id})
            await gateway.sync()
            assert await first.receive_type(CHANGED["type"]) == CHANGED
        assert await first.receive_type(CHANGED["type"]) == CHANGED  # disconnected
        seen = await _frame_types(bystander)
        assert seen and CHANGED["type"] not in seen  # presence frames, nothing else


async def _frame_types(client: Client, wait: float = 0.5) -> list[str]:
    """The types of the frames that arrive within `wait` seconds."""
    seen: list[str] = []
    with trio.move_on_after(wait):
        while True:
            seen.append(json.loads(await client.ws.get_message())["type"])
    return seen


async def test_agents_changed_crosses_processes(hub: RunningHub, spawn_hub: SpawnHub) -> None:
    a, b = await spawn_hub(), await spawn_hub()
    owner = await signed_in_user(hub)
    async with connect(a.ws_url) as client:
        assert (await client.auth(owner))["ok"] is True
        async with signed_in_gateway(b.ws_url, owner) as gateway:
            assert await client.receive_type(CHANGED["type"]) == CHANGED
            await gateway.register(f"agent-{new_id(8)}", agent_name())
            assert await client.receive_type(CHANGED["type"]) == CHANGED
        assert await client.receive_type(CHANGED["type"]) == CHANGED


async def test_the_gateway_list_knows_sockets_on_other_processes(
    hub: RunningHub, client: httpx.AsyncClient, spawn_hub: SpawnHub
) -> None:
    b = await spawn_hub()
    owner = await signed_in_user(hub)
    stale = "UPDATE gateways SET disconnected_at = '2026-01-01T00:00:00.000Z' WHERE id = $1"

    async def listed(gateway_id: str) -> dict[str, Any]:
        answer = await client.get("/api/agents/gateways/list", headers=owner.headers)
        return next(g for g in answer.json()["data"] if g["id"] == gateway_id)

    async with signed_in_gateway(b.ws_url, owner) as gateway:
        await hub.services.db.execute(stale, gateway.gateway_id)  # a late close of an old socket
        assert (await listed(gateway.gateway_id))["disconnectedAt"] is None
    with trio.fail_after(10):  # process B handles the close after the socket is gone
        while (await listed(gateway.gateway_id))["disconnectedAt"] is None:  # noqa: ASYNC110
            await trio.sleep(0.05)  # another process's state, seen over HTTP
