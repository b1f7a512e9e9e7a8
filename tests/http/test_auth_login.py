"""POST /api/auth/login (api.md §4.7) and the lockout of DIFFERENCES D9, over real HTTP."""

from __future__ import annotations

import json
import logging
from typing import Any

import attrs
import httpx
import pytest
import trio

from agentim.logs import JsonFormatter
from agentim.protocol.storable import UNSTORABLE_TEXT
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.helpers import RunningHub, create_user, unique_name

INVALID = {"ok": False, "error": "Invalid credentials"}


async def _audit_rows(hub: RunningHub, action: str, **where: Any) -> list[dict[str, Any]]:
    clauses = " ".join(f"AND {column} = ${i}" for i, column in enumerate(where, start=2))
    rows = await hub.services.db.fetch(
        f"SELECT * FROM audit_log WHERE action = $1 {clauses} ORDER BY created_at",
        action,
        *where.values(),
    )
    return [dict(row) for row in rows]


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": username, "password": password})


async def _lock_state(hub: RunningHub, user_id: str) -> tuple[int, str | None]:
    row = await hub.services.db.fetchrow(
        "SELECT failed_login_attempts, locked_until FROM users WHERE id = $1", user_id
    )
    assert row is not None
    return row["failed_login_attempts"], row["locked_until"]


async def test_login_returns_user_tokens_and_cookie(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await create_user(hub, display_name="Ada")
    with trio.fail_after(10):
        response = await _login(client, user.username, user.password)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    data = body["data"]
    assert data["user"] == {
        "id": user.id,
        "username": user.username,
        "displayName": "Ada",
        "avatarUrl": None,
        "role": "user",
        "totpEnabled": False,
    }
    assert set(data) == {"user", "accessToken", "refreshToken"}
    principal = hub.services.tokens.verify(data["accessToken"])
    assert (principal.user_id, principal.token_type) == (user.id, "access")
    assert hub.services.tokens.verify(data["refreshToken"]).token_type == "refresh"
    assert response.headers["set-cookie"] == (
        f"agentim_rt={data['refreshToken']}; Max-Age=604800; Path=/api/auth; HttpOnly; "
        "SameSite=Strict"
    )
    assert response.text.startswith('{"ok":true,"data":{"user":')
    [row] = await _audit_rows(hub, "login", user_id=user.id)
    assert row["ip_address"] == "127.0.0.1"
    assert row["metadata"] is None


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {},
            [
                {"field": "username", "message": "Required"},
                {"field": "password", "message": "Required"},
            ],
        ),
        (
            {"username": "", "password": 5},
            [
                {"field": "username", "message": "String must contain at least 1 character(s)"},
                {"field": "password", "message": "Expected string, received number"},
            ],
        ),
        ([], [{"field": "(root)", "message": "Expected object, received array"}]),
    ],
)
async def test_login_validation(
    client: httpx.AsyncClient, body: Any, fields: list[dict[str, str]]
) -> None:
    response = await client.post("/api/auth/login", json=body)
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error": "Validation failed", "fields": fields}


async def test_login_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    for raw in (b"", b"{", b"not json"):
        response = await client.post("/api/auth/login", content=raw)
        assert response.status_code == 400
        assert response.json() == {"ok": False, "error": "Invalid JSON body"}


async def test_unknown_user_wrong_password_and_locked_look_identical(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await create_user(hub)
    ghost = unique_name("ghost")
    unknown = await _login(client, ghost, "whatever")
    wrong = await _login(client, user.username, "wrong")
    await hub.services.db.execute(
        "UPDATE users SET locked_until = '2999-01-01T00:00:00.000Z' WHERE id = $1", user.id
    )
    locked = await _login(client, user.username, user.password)
    for response in (unknown, wrong, locked):
        assert response.status_code == 401
        assert response.text == '{"ok":false,"error":"Invalid credentials"}'
        assert "set-cookie" not in response.headers
    [row] = await _audit_rows(hub, "login_failed", metadata=f'{{"username":"{ghost}"}}')
    assert row["user_id"] is None
    rows = await _audit_rows(hub, "login_failed", user_id=user.id)
    assert [r["metadata"] for r in rows] == ['{"attempts":1}', '{"locked":true}']
    assert await _lock_state(hub, user.id) == (1, "2999-01-01T00:00:00.000Z")


async def test_five_failures_lock_then_expiry_restarts_the_count(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await create_user(hub)
    for _ in range(5):
        assert (await _login(client, user.username, "Wrong1234")).status_code == 401
    attempts, locked_until = await _lock_state(hub, user.id)
    assert attempts == 5
    assert locked_until is not None
    # the 6th attempt, with the right password, still fails and does not count
    assert (await _login(client, user.username, user.password)).json() == INVALID
    assert await _lock_state(hub, user.id) == (5, locked_until)
    metadata = [r["metadata"] for r in await _audit_rows(hub, "login_failed", user_id=user.id)]
    assert metadata == [*(f'{{"attempts":{n}}}' for n in range(1, 6)), '{"locked":true}']
    # an operator (or time) moves locked_until into the past: a failure is attempt 1 again
    await hub.services.db.execute(
        "UPDATE users SET locked_until = '2000-01-01T00:00:00.000Z' WHERE id = $1", user.id
    )
    assert (await _login(client, user.username, "Wrong1234")).status_code == 401
    assert await _lock_state(hub, user.id) == (1, None)
    response = await _login(client, user.username, user.password)
    assert response.status_code == 200
    assert await _lock_state(hub, user.id) == (0, None)


async def test_right_password_after_lock_expiry_resets_counters(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await create_user(hub)
    for _ in range(5):
        await _login(client, user.username, "nope")
    await hub.services.db.execute(
        "UPDATE users SET locked_until = '2000-01-01T00:00:00.000Z' WHERE id = $1", user.id
    )
    assert (await _login(client, user.username, user.password)).status_code == 200
    assert await _lock_state(hub, user.id) == (0, None)


async def test_seed_sql_resets_a_lock(hub: RunningHub, client: httpx.AsyncClient) -> None:
    """The operator guide's reset statement, exactly as written there."""
    user = await create_user(hub)
    for _ in range(5):
        await _login(client, user.username, "nope")
    assert (await _login(client, user.username, user.password)).status_code == 401
    await hub.services.db.execute(
        f"UPDATE users SET failed_login_attempts = 0, locked_until = NULL "
        f"WHERE username = '{user.username}'"
    )
    assert (await _login(client, user.username, user.password)).status_code == 200


async def test_username_is_case_sensitive(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await create_user(hub, unique_name("Case"))
    assert (await _login(client, user.username.lower(), user.password)).status_code == 401


async def test_failed_login_logs_a_json_line_without_the_password(
    hub: RunningHub, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique_name("ghost")
    with caplog.at_level(logging.WARNING, logger="Auth"):
        await _login(client, name, "SecretPw1")
    [record] = [r for r in caplog.records if r.name == "Auth" and r.msg == "Login failed"]
    line = JsonFormatter().format(record)
    assert '"action":"login_failed"' in line  # the seed's grep
    assert json.loads(line)["username"] == name
    assert json.loads(line)["level"] == 40
    assert "SecretPw1" not in line


async def test_login_with_unstorable_characters_is_not_a_500(client: httpx.AsyncClient) -> None:
    raw = b'{"username":"a\\u0000b\\ud800","password":"\\udfffx"}'
    response = await client.post("/api/auth/login", content=raw)
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error": "Validation failed",
        "fields": [{"field": "username", "message": UNSTORABLE_TEXT}],
    }


async def test_login_with_long_password_is_refused_not_crashed(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await create_user(hub)
    response = await _login(client, user.username, user.password + "x" * 10_000)
    assert response.status_code == 401


async def test_unknown_user_costs_a_bcrypt_verification(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    """Timing must not tell unknown usernames apart (a dummy hash is verified for them)."""
    slow = await start_hub(nursery, attrs.evolve(settings, bcrypt_rounds=10), redis_prefix)
    user = await create_user(slow)

    async def median_s(username: str) -> float:
        durations = []
        async with httpx.AsyncClient(base_url=slow.url) as client:
            for _ in range(5):
                started = trio.current_time()
                assert (await _login(client, username, "Wrong1234")).status_code == 401
                durations.append(trio.current_time() - started)
        return sorted(durations)[2]

    with trio.fail_after(30):
        await median_s(unique_name("warmup"))
        known, unknown = await median_s(user.username), await median_s(unique_name("ghost"))
    # one cost-10 bcrypt check is tens of ms; a lookup alone would be a few ms
    assert unknown > 0.5 * known
