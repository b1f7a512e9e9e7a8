"""Bad input on the account routes gets envelope errors, never a 500, and changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import RunningHub, User, signed_in_user

MIB = 1024 * 1024


async def _snapshot(hub: RunningHub, user: User) -> tuple[dict[str, Any], int, int]:
    row = await hub.services.db.fetchrow("SELECT * FROM users WHERE id = $1", user.id)
    users = await hub.services.db.fetchval("SELECT count(*) FROM users")
    tokens = await hub.services.db.fetchval("SELECT count(*) FROM refresh_tokens")
    return dict(row or {}), users, tokens


def _routes(admin: User) -> list[tuple[str, str]]:
    return [
        ("POST", "/api/auth/login"),
        ("PUT", "/api/users/me"),
        ("PUT", "/api/users/me/password"),
        ("POST", "/api/users"),
        ("PUT", f"/api/users/{admin.id}"),
    ]


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (b"{", 400, "Invalid JSON body"),
        (b"", 400, "Invalid JSON body"),
        (b"\xff\xfe", 400, "Invalid JSON body"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "Invalid JSON body"),
        (b'"just a string"', 400, "Validation failed"),
        (b"x" * (MIB + 1), 413, ""),
    ],
    ids=["truncated", "empty", "not-utf8", "deeply-nested", "not-an-object", "oversized"],
)
async def test_bad_bodies_change_nothing(
    hub: RunningHub, client: httpx.AsyncClient, raw: bytes, status: int, error: str
) -> None:
    admin = await signed_in_user(hub, role="admin")
    before = await _snapshot(hub, admin)
    for method, path in _routes(admin):
        response = await client.request(method, path, content=raw, headers=admin.headers)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["ok"] is False
        assert response.json()["error"] == error
    assert await _snapshot(hub, admin) == before


async def test_wrong_types_everywhere(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await signed_in_user(hub, role="admin")
    before = await _snapshot(hub, admin)
    body = {
        "username": ["a"],
        "password": {"x": 1},
        "displayName": True,
        "avatarUrl": 1,
        "currentPassword": None,
        "newPassword": 12345678,
        "role": 1,
        "maxWsConnections": "3",
        "maxGateways": True,
    }
    for method, path in _routes(admin):
        response = await client.request(method, path, json=body, headers=admin.headers)
        assert response.status_code == 400, path
        assert response.json()["error"] == "Validation failed"
        assert all(f["message"].startswith("Expected ") for f in response.json()["fields"])
    assert await _snapshot(hub, admin) == before


async def test_over_long_fields(hub: RunningHub, client: httpx.AsyncClient) -> None:
    admin = await signed_in_user(hub, role="admin")
    before = await _snapshot(hub, admin)
    response = await client.post(
        "/api/users",
        headers=admin.headers,
        json={"username": "u" * 51, "password": "Aa1" * 50, "displayName": "d" * 51},
    )
    assert [f["message"] for f in response.json()["fields"]] == [
        "String must contain at most 50 character(s)",
        "String must contain at most 128 character(s)",
        "String must contain at most 50 character(s)",
    ]
    assert await _snapshot(hub, admin) == before
