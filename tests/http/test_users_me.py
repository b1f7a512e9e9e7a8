"""GET/PUT /api/users/me and PUT /api/users/me/password (api.md §5.1-5.3)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio

from agentim.protocol.events import Target
from agentim.protocol.storable import UNSTORABLE_TEXT
from tests.helpers import RunningHub, User, create_user, login, signed_in_user


async def _row(hub: RunningHub, user: User) -> dict[str, Any]:
    row = await hub.services.db.fetchrow("SELECT * FROM users WHERE id = $1", user.id)
    assert row is not None
    return dict(row)


async def test_get_me(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub, display_name="Grace")
    with trio.fail_after(10):
        response = await client.get("/api/users/me", headers=user.headers)
    row = await _row(hub, user)
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "data": {
            "id": user.id,
            "username": user.username,
            "displayName": "Grace",
            "avatarUrl": None,
            "role": "user",
            "totpEnabled": False,  # what the web client's settings page reads
            "createdAt": row["created_at"],
            "updatedAt": row["updated_at"],
        },
    }


async def test_update_profile_sanitises_and_always_touches_updated_at(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    await hub.services.db.execute(
        "UPDATE users SET updated_at = '2000-01-01T00:00:00.000Z' WHERE id = $1", user.id
    )
    response = await client.put(
        "/api/users/me",
        headers=user.headers,
        json={
            "displayName": " <b>Bo</b> &amp; Co ",
            "avatarUrl": "/uploads/a.png",
            "role": "admin",
        },
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["displayName"], data["avatarUrl"], data["role"]) == (
        "Bo & Co",
        "/uploads/a.png",
        "user",
    )
    assert data["updatedAt"] > "2000-01-01T00:00:00.000Z"
    empty = await client.put("/api/users/me", headers=user.headers, json={})
    assert empty.status_code == 200
    assert empty.json()["data"]["updatedAt"] >= data["updatedAt"]
    tags_only = await client.put(
        "/api/users/me", headers=user.headers, json={"displayName": "<i></i>"}
    )
    assert tags_only.json()["data"]["displayName"] == ""  # sanitised after validation (§17.22)
    assert not await hub.services.db.fetch(
        "SELECT 1 FROM audit_log WHERE user_id = $1", user.id
    )  # profile updates are not audited


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"displayName": ""},
            [
                {"field": "displayName", "message": "String must contain at least 1 character(s)"},
                {"field": "displayName", "message": "Display name cannot be only whitespace"},
            ],
        ),
        (
            {"displayName": "   "},
            [{"field": "displayName", "message": "Display name cannot be only whitespace"}],
        ),
        (
            {"displayName": "x" * 51},
            [{"field": "displayName", "message": "String must contain at most 50 character(s)"}],
        ),
        (
            {"displayName": "😀" * 26},
            [{"field": "displayName", "message": "String must contain at most 50 character(s)"}],
        ),
        (
            {"avatarUrl": "https://evil.example/a.png"},
            [{"field": "avatarUrl", "message": 'Invalid input: must start with "/uploads/"'}],
        ),
        (
            {"avatarUrl": "/uploads/" + "a" * 500},
            [{"field": "avatarUrl", "message": "String must contain at most 500 character(s)"}],
        ),
        (
            {"displayName": 7, "avatarUrl": None},
            [
                {"field": "displayName", "message": "Expected string, received number"},
                {"field": "avatarUrl", "message": "Expected string, received null"},
            ],
        ),
        (None, [{"field": "(root)", "message": "Expected object, received null"}]),
    ],
)
async def test_update_profile_validation_leaves_the_row_unchanged(
    hub: RunningHub, client: httpx.AsyncClient, body: Any, fields: list[dict[str, str]]
) -> None:
    user = await signed_in_user(hub)
    before = await _row(hub, user)
    response = await client.put("/api/users/me", headers=user.headers, content=json.dumps(body))
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error": "Validation failed", "fields": fields}
    assert await _row(hub, user) == before


async def test_update_profile_with_nul_or_lone_surrogate_is_refused(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    before = await client.get("/api/users/me", headers=user.headers)
    for raw in (b'{"displayName":"a\\u0000b"}', b'{"displayName":"a\\ud800"}'):
        response = await client.put("/api/users/me", headers=user.headers, content=raw)
        assert response.status_code == 400
        assert response.json()["fields"] == [{"field": "displayName", "message": UNSTORABLE_TEXT}]
    after = await client.get("/api/users/me", headers=user.headers)
    assert after.json() == before.json()


async def test_password_change_revokes_every_session(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await create_user(hub)
    web, gateway = await login(client, user), await login(client, user)
    hub.services.events.captured = []
    response = await client.put(
        "/api/users/me/password",
        headers=web.headers,
        json={"currentPassword": user.password, "newPassword": "N3wPassword"},
    )
    assert (response.status_code, response.text) == (200, '{"ok":true}')
    assert "set-cookie" not in response.headers
    for token in (web.token, gateway.token):  # the caller's own token too
        me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["error"] == "Token revoked"
    assert not await hub.services.db.fetch(
        "SELECT 1 FROM refresh_tokens WHERE user_id = $1", user.id
    )
    assert [e.control for e in hub.services.events.captured if e.target is Target.CONTROL] == [
        {"action": "revoke_user"}
    ]
    rows = await hub.services.db.fetch(
        "SELECT ip_address FROM audit_log WHERE action = 'password_change' AND user_id = $1",
        user.id,
    )
    assert [r["ip_address"] for r in rows] == ["127.0.0.1"]
    old = await client.post(
        "/api/auth/login", json={"username": user.username, "password": user.password}
    )
    assert old.status_code == 401
    new = await client.post(
        "/api/auth/login", json={"username": user.username, "password": "N3wPassword"}
    )
    assert new.status_code == 200


async def test_wrong_current_password_is_400_and_not_a_lockout(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    before = await _row(hub, user)
    response = await client.put(
        "/api/users/me/password",
        headers=user.headers,
        json={"currentPassword": "wrong", "newPassword": "N3wPassword"},
    )
    assert (response.status_code, response.json()) == (
        400,
        {"ok": False, "error": "Current password is incorrect"},
    )
    assert await _row(hub, user) == before
    assert (await client.get("/api/users/me", headers=user.headers)).status_code == 200


async def test_password_policy_messages(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await signed_in_user(hub)
    response = await client.put(
        "/api/users/me/password",
        headers=user.headers,
        json={"currentPassword": "", "newPassword": "abc"},
    )
    assert response.json() == {
        "ok": False,
        "error": "Validation failed",
        "fields": [
            {"field": "currentPassword", "message": "String must contain at least 1 character(s)"},
            {"field": "newPassword", "message": "String must contain at least 8 character(s)"},
            {"field": "newPassword", "message": "Password must contain an uppercase letter"},
            {"field": "newPassword", "message": "Password must contain a digit"},
        ],
    }
    long = await client.put(
        "/api/users/me/password",
        headers=user.headers,
        json={"currentPassword": "x", "newPassword": "Aa1" * 43},
    )
    assert long.json()["fields"] == [
        {"field": "newPassword", "message": "String must contain at most 128 character(s)"}
    ]


async def test_password_change_of_a_deleted_user_is_404(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    await hub.services.db.execute("DELETE FROM users WHERE id = $1", user.id)
    response = await client.put(
        "/api/users/me/password",
        headers=user.headers,
        json={"currentPassword": user.password, "newPassword": "N3wPassword"},
    )
    assert (response.status_code, response.json()) == (
        404,
        {"ok": False, "error": "User not found"},
    )
    profile = await client.put("/api/users/me", headers=user.headers, json={})
    assert profile.status_code == 404
