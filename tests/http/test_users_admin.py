"""Admin user management: GET/POST /api/users, PUT /api/users/:id (api.md §5.4-5.6, D21)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from agentim.protocol.events import Target
from tests.helpers import RunningHub, User, create_user, login, signed_in_user, unique_name


async def _admin(hub: RunningHub) -> User:
    return await signed_in_user(hub, role="admin")


async def _audit(hub: RunningHub, action: str, target_id: str) -> list[dict[str, Any]]:
    rows = await hub.services.db.fetch(
        "SELECT user_id, target_type, metadata, ip_address FROM audit_log "
        "WHERE action = $1 AND target_id = $2",
        action,
        target_id,
    )
    return [dict(row) for row in rows]


async def test_list_users_pages_in_creation_order(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    admin = await _admin(hub)
    await create_user(hub)
    total = await hub.services.db.fetchval("SELECT count(*) FROM users")
    with trio.fail_after(10):
        response = await client.get("/api/users", headers=admin.headers)
    body = response.json()
    assert response.status_code == 200
    assert list(body) == ["ok", "data", "total"]
    assert body["total"] == total
    assert len(body["data"]) == min(total, 100)
    created = [u["createdAt"] for u in body["data"]]
    assert created == sorted(created)
    assert set(body["data"][0]) == {
        "id",
        "username",
        "displayName",
        "avatarUrl",
        "role",
        "maxWsConnections",
        "maxGateways",
        "createdAt",
        "updatedAt",
    }
    page = await client.get("/api/users?limit=1&offset=1", headers=admin.headers)
    assert page.json()["data"] == body["data"][1:2]


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("limit=0", 100),
        ("limit=abc", 100),
        ("limit=-5", 1),
        ("limit=2.7", 2),
        ("limit=", 100),
        ("limit=0x2", 2),
        ("limit=1e0", 1),
        ("limit=9999", 500),
        ("offset=-3&limit=1", 1),
        ("offset=2.5&limit=1", 1),
        ("limit=Infinity", 500),
    ],
)
async def test_list_users_query_parsing(
    hub: RunningHub, client: httpx.AsyncClient, query: str, count: int
) -> None:
    admin = await _admin(hub)
    for _ in range(3):
        await create_user(hub)
    total = await hub.services.db.fetchval("SELECT count(*) FROM users")
    response = await client.get(f"/api/users?{query}", headers=admin.headers)
    assert response.status_code == 200
    assert len(response.json()["data"]) == min(count, total)


async def test_create_user(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await _admin(hub)
    name = unique_name("New")
    response = await client.post(
        "/api/users", headers=admin.headers, json={"username": name, "password": "Passw0rdX"}
    )
    assert response.status_code == 200  # not 201
    data = response.json()["data"]
    assert list(data) == ["id", "username", "displayName", "role", "createdAt", "updatedAt"]
    assert (data["username"], data["displayName"], data["role"]) == (name, name, "user")
    assert data["createdAt"] == data["updatedAt"]
    assert await _audit(hub, "admin_user_create", data["id"]) == [
        {"user_id": admin.id, "target_type": "user", "metadata": None, "ip_address": "127.0.0.1"}
    ]
    signed = await login(client, User(data["id"], name, "Passw0rdX"))
    assert signed.token
    other = await client.post(
        "/api/users",
        headers=admin.headers,
        json={
            "username": name.lower(),
            "password": "Passw0rdX",
            "displayName": " <b>Lo</b> ",
            "role": "admin",
        },
    )
    assert other.status_code == 200  # names are case-sensitive
    assert (other.json()["data"]["displayName"], other.json()["data"]["role"]) == ("Lo", "admin")


async def test_create_duplicate_is_409_and_adds_nothing(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    admin = await _admin(hub)
    existing = await create_user(hub)
    count = await hub.services.db.fetchval("SELECT count(*) FROM users")
    response = await client.post(
        "/api/users",
        headers=admin.headers,
        json={"username": existing.username, "password": "Passw0rdX"},
    )
    assert (response.status_code, response.json()) == (
        409,
        {"ok": False, "error": "Username already taken"},
    )
    assert await hub.services.db.fetchval("SELECT count(*) FROM users") == count


async def test_create_validation(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await _admin(hub)
    response = await client.post(
        "/api/users",
        headers=admin.headers,
        json={"username": "a b", "password": "password", "displayName": " ", "role": "root"},
    )
    assert response.json() == {
        "ok": False,
        "error": "Validation failed",
        "fields": [
            {"field": "username", "message": "Invalid"},
            {"field": "password", "message": "Password must contain an uppercase letter"},
            {"field": "password", "message": "Password must contain a digit"},
            {"field": "displayName", "message": "Display name cannot be only whitespace"},
            {
                "field": "role",
                "message": "Invalid enum value. Expected 'admin' | 'user', received 'root'",
            },
        ],
    }
    short = await client.post("/api/users", headers=admin.headers, json={"username": "ab"})
    assert short.json()["fields"] == [
        {"field": "username", "message": "String must contain at least 3 character(s)"},
        {"field": "password", "message": "Required"},
    ]


async def test_admin_update(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await _admin(hub)
    target = await create_user(hub)
    response = await client.put(
        f"/api/users/{target.id}",
        headers=admin.headers,
        json={
            "displayName": "<i>Neo</i>",
            "role": "admin",
            "maxWsConnections": 3,
            "maxGateways": None,
        },
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert list(data) == [
        "id",
        "username",
        "displayName",
        "role",
        "maxWsConnections",
        "maxGateways",
        "createdAt",
        "updatedAt",
    ]
    assert (data["displayName"], data["role"], data["maxWsConnections"], data["maxGateways"]) == (
        "Neo",
        "admin",
        3,
        None,
    )
    cleared = await client.put(
        f"/api/users/{target.id}", headers=admin.headers, json={"maxWsConnections": None}
    )
    assert cleared.json()["data"]["maxWsConnections"] is None
    assert cleared.json()["data"]["role"] == "admin"  # absent keys are left alone
    rows = await _audit(hub, "admin_user_update", target.id)
    assert [r["user_id"] for r in rows] == [admin.id, admin.id]


async def test_admin_password_reset_ends_the_targets_sessions(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    admin = await _admin(hub)
    target = await login(client, await create_user(hub))
    hub.services.events.captured = []
    response = await client.put(
        f"/api/users/{target.id}", headers=admin.headers, json={"password": "Res3tPassword"}
    )
    assert response.status_code == 200
    me = await client.get("/api/users/me", headers=target.headers)
    assert me.json()["error"] == "Token revoked"
    assert (await client.get("/api/users/me", headers=admin.headers)).status_code == 200
    assert [(e.target, e.target_id) for e in hub.services.events.captured] == [
        (Target.CONTROL, target.id)
    ]
    assert not await hub.services.db.fetch(
        "SELECT 1 FROM refresh_tokens WHERE user_id = $1", target.id
    )
    relogin = await client.post(
        "/api/auth/login", json={"username": target.username, "password": "Res3tPassword"}
    )
    assert relogin.status_code == 200


async def test_admin_update_errors(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await _admin(hub)
    missing = await client.put("/api/users/nobody", headers=admin.headers, json={})
    assert (missing.status_code, missing.json()) == (404, {"ok": False, "error": "User not found"})
    demote = await client.put(
        f"/api/users/{admin.id}", headers=admin.headers, json={"role": "user"}
    )
    assert (demote.status_code, demote.json()) == (
        400,
        {"ok": False, "error": "Cannot demote yourself"},
    )
    assert (
        await client.put(f"/api/users/{admin.id}", headers=admin.headers, json={"role": "admin"})
    ).status_code == 200
    invalid = await client.put(
        "/api/users/nobody",
        headers=admin.headers,
        json={"maxWsConnections": 0, "maxGateways": 1.5, "password": "X"},
    )
    assert invalid.status_code == 400  # validation comes before existence
    assert invalid.json()["fields"][:2] == [
        {"field": "password", "message": "String must contain at least 8 character(s)"},
        {"field": "password", "message": "Password must contain a lowercase letter"},
    ]
    assert invalid.json()["fields"][-2:] == [
        {"field": "maxWsConnections", "message": "Number must be greater than or equal to 1"},
        {"field": "maxGateways", "message": "Expected integer, received float"},
    ]
    bad_json = await client.put(f"/api/users/{admin.id}", headers=admin.headers, content=b"{")
    assert bad_json.json() == {"ok": False, "error": "Invalid JSON body"}
