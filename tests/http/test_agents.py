"""Agents and gateways API (api.md §9) and what deleting an agent does on the wire (§5.5, D13)."""

from __future__ import annotations

import httpx

from agentim.protocol.ids import new_id
from tests.gateway_helpers import (
    DEVICE,
    add_agent_to_room,
    agent_name,
    agent_row,
    signed_in_gateway,
    wait_disconnected,
)
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.ws.wsclient import signed_in


async def _agent(hub: RunningHub, owner: User, **extra: object) -> tuple[str, str, str]:
    """Register an agent through a gateway (which then disconnects): (agent id, name, gw id)."""
    agent_id, name = f"agent-{new_id(8)}", agent_name()
    async with signed_in_gateway(hub, owner) as gateway:
        await gateway.register(agent_id, name, **extra)
    await wait_disconnected(hub, gateway.gateway_id)
    return agent_id, name, gateway.gateway_id


async def test_list_get_and_gateways(hub: RunningHub, client: httpx.AsyncClient) -> None:
    owner, other = await signed_in_user(hub), await signed_in_user(hub)
    agent_id, name, gateway_id = await _agent(
        hub, owner, agent_type="codex", capabilities=["py"], workingDirectory="/w"
    )
    await _agent(hub, other)
    response = await client.get("/api/agents", headers=owner.headers)
    assert response.status_code == 200
    [agent] = response.json()["data"]
    row = await agent_row(hub, agent_id)
    assert row is not None
    assert agent == {
        "id": agent_id, "name": name, "type": "codex", "status": "offline",
        "visibility": "private", "gatewayId": gateway_id, "workingDirectory": "/w",
        "capabilities": ["py"], "connectionType": "cli", "lastSeenAt": row["last_seen_at"],
        "createdAt": row["created_at"], "updatedAt": row["updated_at"], "deviceInfo": DEVICE,
    }  # fmt: skip
    assert list(agent) == [  # the reference's key order (api.md §15.6)
        "id",
        "name",
        "type",
        "status",
        "visibility",
        "gatewayId",
        "workingDirectory",
        "capabilities",
        "connectionType",
        "lastSeenAt",
        "createdAt",
        "updatedAt",
        "deviceInfo",
    ]
    assert (await client.get(f"/api/agents/{agent_id}", headers=owner.headers)).json() == {
        "ok": True,
        "data": agent,
    }
    missing = await client.get(f"/api/agents/{agent_id}", headers=other.headers)
    assert (missing.status_code, missing.json()) == (404, {"ok": False, "error": "Agent not found"})
    bad = await client.get("/api/agents/bad!id", headers=owner.headers)
    assert (bad.status_code, bad.json()["error"]) == (400, "Invalid parameter: id")
    gateways = (await client.get("/api/agents/gateways/list", headers=owner.headers)).json()
    [gateway] = gateways["data"]
    assert gateway["id"] == gateway_id and gateway["userId"] == owner.id
    assert list(gateway) == [
        "id",
        "userId",
        "name",
        "hostname",
        "platform",
        "arch",
        "nodeVersion",
        "connectedAt",
        "disconnectedAt",
        "createdAt",
    ]
    assert gateway["disconnectedAt"] is not None
    paged = await client.get("/api/agents?limit=0&offset=1", headers=owner.headers)
    assert paged.json() == {"ok": True, "data": []}
    unknown = await client.get("/api/agents/x/y/z", headers=owner.headers)
    assert (unknown.status_code, unknown.text) == (404, "404 Not Found")


async def test_shared_agents_and_visibility(hub: RunningHub, client: httpx.AsyncClient) -> None:
    owner, other = await signed_in_user(hub, display_name="Owner Name"), await signed_in_user(hub)
    agent_id, _, _ = await _agent(hub, owner)
    url = f"/api/agents/{agent_id}"
    invalid = await client.put(url, headers=owner.headers, json={"visibility": "public"})
    assert invalid.status_code == 400
    assert invalid.json()["fields"][0]["field"] == "visibility"
    assert (await client.put(url, headers=other.headers, json={})).json() == {
        "ok": False,
        "error": "You do not own this agent",
    }
    missing = await client.put("/api/agents/nope", headers=owner.headers, json={})
    assert missing.status_code == 404
    response = await client.put(url, headers=owner.headers, json={"visibility": "shared"})
    assert response.status_code == 200 and response.json()["data"]["visibility"] == "shared"
    shared = (await client.get("/api/agents/shared", headers=other.headers)).json()["data"]
    assert [(a["id"], a["ownerName"]) for a in shared if a["id"] == agent_id] == [
        (agent_id, "Owner Name")
    ]
    own_view = (await client.get("/api/agents/shared", headers=owner.headers)).json()["data"]
    assert agent_id not in [a["id"] for a in own_view]
    assert (await client.get(url, headers=other.headers)).status_code == 200


async def test_delete_online_agent(hub: RunningHub, client: httpx.AsyncClient) -> None:
    owner, other = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent_id = f"agent-{new_id(8)}"
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, owner) as watcher:
        await gateway.register(agent_id, agent_name())
        await add_agent_to_room(hub, room_id, agent_id)
        await watcher.join(room_id)
        forbidden = await client.delete(f"/api/agents/{agent_id}", headers=other.headers)
        assert (forbidden.status_code, forbidden.json()["error"]) == (
            403,
            "You do not own this agent",
        )
        response = await client.delete(f"/api/agents/{agent_id}", headers=owner.headers)
        assert response.json() == {"ok": True}
        removed = await gateway.receive_type("server:remove_agent")
        assert removed == {"type": "server:remove_agent", "agentId": agent_id}
        update = await watcher.receive_type("server:room_update")
        assert [m["memberId"] for m in update["members"]] == [owner.id]
        await gateway.sync()
        assert agent_id not in hub.services.hub.agents
        await gateway.send(
            {
                "type": "gateway:register_agent",  # refused: tombstoned
                "agent": {"id": agent_id, "name": "again", "type": "generic"},
            }
        )
        assert (await gateway.receive_type("server:remove_agent"))["agentId"] == agent_id
    assert await agent_row(hub, agent_id) is None
    tombstone = await hub.services.db.fetchrow(
        "SELECT * FROM deleted_agents WHERE agent_id = $1", agent_id
    )
    assert tombstone is not None and tombstone["user_id"] == owner.id
    again = await client.delete(f"/api/agents/{agent_id}", headers=owner.headers)
    assert (again.status_code, again.json()["error"]) == (404, "Agent not found")


async def test_delete_offline_agent_refuses_its_next_registration(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner = await signed_in_user(hub)
    agent_id, name, gateway_id = await _agent(hub, owner)
    response = await client.delete(f"/api/agents/{agent_id}", headers=owner.headers)
    assert response.status_code == 200
    async with signed_in_gateway(hub, owner, gateway_id) as gateway:
        await gateway.send(
            {
                "type": "gateway:register_agent",
                "agent": {"id": agent_id, "name": name, "type": "generic"},
            }
        )
        assert await gateway.receive_type("server:remove_agent") == {
            "type": "server:remove_agent",
            "agentId": agent_id,
        }
    assert await agent_row(hub, agent_id) is None
