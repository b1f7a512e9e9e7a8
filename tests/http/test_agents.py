"""Agents and gateways API (api.md §9) and what deleting an agent does on the wire (§5.5, D13)."""

from __future__ import annotations

import logging

import httpx
import pytest

from agentim.protocol.ids import new_id
from tests.gateway_helpers import (
    DEVICE,
    add_agent_to_room,
    agent_name,
    agent_row,
    signed_in_gateway,
    wait_disconnected,
)
from tests.helpers import RunningHub, User, create_room, create_user, signed_in_user
from tests.ws.wsclient import signed_in

COMMAND = {"name": "review", "description": "Review the diff", "usage": "/review [path]",
           "source": "skill"}  # fmt: skip


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
        hub, owner, agent_type="codex", capabilities=["py"], workingDirectory="/w",
        slashCommands=[COMMAND], mcpServers=["github"], model="gpt-5",
    )  # fmt: skip
    await _agent(hub, other)
    response = await client.get("/api/agents", headers=owner.headers)
    assert response.status_code == 200
    [agent] = response.json()["data"]
    row = await agent_row(hub, agent_id)
    assert row is not None
    assert agent == {
        "id": agent_id, "name": name, "type": "codex", "status": "offline",
        "visibility": "private", "visibilityList": [], "gatewayId": gateway_id,
        "workingDirectory": "/w", "capabilities": ["py"], "connectionType": "cli",
        "slashCommands": [COMMAND], "mcpServers": ["github"], "model": "gpt-5",
        "lastSeenAt": row["last_seen_at"], "createdAt": row["created_at"],
        "updatedAt": row["updated_at"], "deviceInfo": DEVICE,
    }  # fmt: skip
    assert list(agent) == [  # the reference's key order (api.md §15.6, 631a1ad columns)
        "id",
        "name",
        "type",
        "status",
        "visibility",
        "visibilityList",
        "gatewayId",
        "workingDirectory",
        "capabilities",
        "connectionType",
        "slashCommands",
        "mcpServers",
        "model",
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
        "ephemeral",
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
    assert invalid.json()["fields"] == [{
        "field": "visibility",
        "message": "Invalid enum value. Expected 'private' | 'all' | 'whitelist', "
                   "received 'public'",
    }]  # fmt: skip
    assert (await client.put(url, headers=other.headers, json={})).json() == {
        "ok": False,
        "error": "You do not own this agent",
    }
    missing = await client.put("/api/agents/nope", headers=owner.headers, json={})
    assert missing.status_code == 404
    response = await client.put(url, headers=owner.headers, json={"visibility": "all"})
    assert response.status_code == 200 and response.json()["data"]["visibility"] == "all"
    shared = (await client.get("/api/agents/shared", headers=other.headers)).json()["data"]
    assert [(a["id"], a["ownerName"]) for a in shared if a["id"] == agent_id] == [
        (agent_id, "Owner Name")
    ]
    own_view = (await client.get("/api/agents/shared", headers=owner.headers)).json()["data"]
    assert agent_id not in [a["id"] for a in own_view]
    assert (await client.get(url, headers=other.headers)).status_code == 200


async def test_old_shared_value_is_stored_as_all(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner = await signed_in_user(hub)
    agent_id, _, _ = await _agent(hub, owner)
    response = await client.put(
        f"/api/agents/{agent_id}", headers=owner.headers, json={"visibility": "shared"}
    )
    assert response.json()["data"]["visibility"] == "all"
    assert (await agent_row(hub, agent_id) or {})["visibility"] == "all"


async def test_whitelist_shows_the_agent_to_listed_users_only(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, listed, unlisted = [await signed_in_user(hub) for _ in range(3)]
    agent_id, _, _ = await _agent(hub, owner)
    url = f"/api/agents/{agent_id}"
    refused = await client.put(url, headers=owner.headers, json={"visibility": "whitelist"})
    assert (refused.status_code, refused.json()) == (400, {
        "ok": False, "error": "Validation failed",
        "fields": [{"field": "visibilityList", "message": "validation.visibilityListRequired"}],
    })  # fmt: skip
    for odd in (["whitelist"], {"a": 1}):  # not a string: a 400 like any bad value, not a 500
        bad = await client.put(url, headers=owner.headers, json={"visibility": odd})
        assert (bad.status_code, bad.json()["error"]) == (400, "Validation failed")
    body = {"visibility": "whitelist", "visibilityList": [listed.id]}
    response = await client.put(url, headers=owner.headers, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["visibilityList"] == [listed.id]

    def ids(answer: httpx.Response) -> list[str]:
        return [a["id"] for a in answer.json()["data"]]

    assert agent_id in ids(await client.get("/api/agents/shared", headers=listed.headers))
    assert agent_id not in ids(await client.get("/api/agents/shared", headers=unlisted.headers))
    assert (await client.get(url, headers=listed.headers)).status_code == 200
    assert (await client.get(url, headers=unlisted.headers)).status_code == 404
    for user, status in ((listed, 201), (unlisted, 403)):
        room_id = await create_room(hub, user)
        added = await client.post(f"/api/rooms/{room_id}/members", headers=user.headers,
                                  json={"memberId": agent_id, "memberType": "agent"})  # fmt: skip
        assert added.status_code == status, added.text


async def test_rename_is_broadcast_to_the_agents_rooms(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner, other = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    agent_id = f"agent-{new_id(8)}"
    url = f"/api/agents/{agent_id}"
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, owner) as watcher:
        await gateway.register(agent_id, agent_name(), model="opus")
        await add_agent_to_room(hub, room_id, agent_id)
        await watcher.join(room_id)
        for bad, message in (
            ("", "String must contain at least 1 character(s)"),
            ("   ", "validation.nameWhitespace"),
            ("x" * 101, "String must contain at most 100 character(s)"),
        ):
            answer = await client.put(url, headers=owner.headers, json={"name": bad})
            assert answer.status_code == 400
            assert answer.json()["fields"][0] == {"field": "name", "message": message}
        assert (await client.put(url, headers=other.headers, json={"name": "x"})).status_code == 403
        response = await client.put(url, headers=owner.headers, json={"name": "Renamed"})
        assert response.status_code == 200 and response.json()["data"]["name"] == "Renamed"
        status = await watcher.receive_type("server:agent_status")
        assert status == {"type": "server:agent_status", "agent": {
            "id": agent_id, "name": "Renamed", "type": "generic", "status": "online",
            "model": "opus"}}  # fmt: skip
    assert (await agent_row(hub, agent_id) or {})["name"] == "Renamed"


async def test_gateway_list_hides_ephemeral_gateways_and_shows_live_state(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    owner = await signed_in_user(hub)
    _, _, gone_id = await _agent(hub, owner)
    db = hub.services.db
    async with signed_in_gateway(hub, owner) as live, signed_in_gateway(hub, owner) as brief:
        await db.execute("UPDATE gateways SET ephemeral = true WHERE id = $1", brief.gateway_id)
        # Stale rows, as a crashed process or a racing old socket leaves them:
        await db.execute("UPDATE gateways SET disconnected_at = $2 WHERE id = $1",
                         live.gateway_id, "2026-01-01T00:00:00.000Z")  # fmt: skip
        await db.execute("UPDATE gateways SET disconnected_at = NULL WHERE id = $1", gone_id)
        listed = (await client.get("/api/agents/gateways/list", headers=owner.headers)).json()
    by_id = {g["id"]: g for g in listed["data"]}
    assert set(by_id) == {gone_id, live.gateway_id}
    assert by_id[live.gateway_id]["disconnectedAt"] is None
    assert by_id[live.gateway_id]["ephemeral"] is False
    assert by_id[gone_id]["disconnectedAt"] == by_id[gone_id]["connectedAt"] is not None


async def test_delete_gateway(
    hub: RunningHub, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    owner, other = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, owner)
    first, second = f"agent-{new_id(8)}", f"agent-{new_id(8)}"
    async with signed_in_gateway(hub, owner) as gateway, signed_in(hub, owner) as watcher:
        await gateway.register(first, agent_name())
        await gateway.register(second, agent_name())
        await add_agent_to_room(hub, room_id, first)
        await watcher.join(room_id)
        url = f"/api/agents/gateways/{gateway.gateway_id}"
        missing = await client.delete("/api/agents/gateways/nope", headers=owner.headers)
        assert (missing.status_code, missing.json()) == (
            404, {"ok": False, "error": "Gateway not found"})  # fmt: skip
        foreign = await client.delete(url, headers=other.headers)
        assert (foreign.status_code, foreign.json()) == (
            403, {"ok": False, "error": "You do not own this gateway"})  # fmt: skip
        assert (await client.delete(url, headers=owner.headers)).json() == {"ok": True}
        removed = {(await gateway.receive_type("server:remove_agent"))["agentId"] for _ in "12"}
        assert removed == {first, second}
        update = await watcher.receive_type("server:room_update")
        assert [m["memberId"] for m in update["members"]] == [owner.id]
        await gateway.sync()
        assert first not in hub.services.hub.agents and second not in hub.services.hub.agents
        again = {"id": first, "name": "again", "type": "generic"}  # refused: tombstoned (D13)
        await gateway.send({"type": "gateway:register_agent", "agent": again})
        assert (await gateway.receive_type("server:remove_agent"))["agentId"] == first
        fresh = f"agent-{new_id(8)}"  # the socket outlived its gateway row: not registered
        with caplog.at_level(logging.WARNING, logger="GatewayHandler"):
            await gateway.register(fresh, agent_name())
        assert f"Gateway {gateway.gateway_id} was deleted; agent {fresh} not registered" in (
            caplog.text
        )
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert await agent_row(hub, fresh) is None
    db = hub.services.db
    assert await db.fetchval("SELECT count(*) FROM gateways WHERE id = $1", gateway.gateway_id) == 0
    assert await db.fetchval(
        "SELECT count(*) FROM agents WHERE id = ANY($1::text[])", [first, second]) == 0  # fmt: skip
    assert await db.fetchval(
        "SELECT count(*) FROM room_members WHERE member_id = $1", first) == 0  # fmt: skip
    tombstones = await db.fetch(
        "SELECT agent_id, user_id FROM deleted_agents WHERE agent_id = ANY($1::text[])",
        [first, second],
    )  # fmt: skip
    assert {(r["agent_id"], r["user_id"]) for r in tombstones} == {(first, owner.id),
                                                                   (second, owner.id)}  # fmt: skip


async def test_user_search(hub: RunningHub, client: httpx.AsyncClient) -> None:
    tag = new_id(6).lower().replace("-", "x").replace("_", "x")
    me = await signed_in_user(hub, username=f"me_{tag}")
    found = await create_user(hub, f"ada_{tag}", display_name="Ada Lovelace")
    await create_user(hub, f"bob{tag}", display_name=f"B {tag.upper()}")
    by_display = await create_user(hub, f"zed{new_id(6)}", display_name=f"Zed {tag}")

    async def search(q: str) -> list[dict[str, object]]:
        response = await client.get("/api/users/search", params={"q": q}, headers=me.headers)
        assert response.status_code == 200
        return response.json()["data"]  # type: ignore[no-any-return]

    hits = await search(tag)
    assert me.id not in [h["id"] for h in hits]
    assert {h["id"] for h in hits} >= {found.id, by_display.id}
    assert len(hits) == 3
    ada = next(h for h in hits if h["id"] == found.id)
    assert ada == {"id": found.id, "username": f"ada_{tag}", "displayName": "Ada Lovelace",
                   "avatarUrl": None}  # fmt: skip
    assert await search(" a ") == []  # trimmed below 2 characters
    assert [h["id"] for h in await search(f"ADA_{tag}")] == [found.id]
    assert [h["id"] for h in await search(f"a%{tag}")] == []  # % is not a wildcard
    many = [await create_user(hub, f"many_{tag}_{i}") for i in range(12)]
    assert len(await search(f"many_{tag}")) == 10 and many
    assert (await client.get("/api/users/search?q=abc")).status_code == 401


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
