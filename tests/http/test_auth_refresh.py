"""POST /api/auth/refresh (api.md §4.8) with the per-session rotation of DIFFERENCES D8."""

from __future__ import annotations

import attrs
import httpx
import trio

from tests.conftest import start_hub
from tests.helpers import RunningHub, User, create_user, login

CLEAR = "agentim_rt=; Max-Age=0; Path=/api/auth"
REVOKED = {"ok": False, "error": "Refresh token revoked or invalid"}


async def _refresh_body(client: httpx.AsyncClient, token: str) -> httpx.Response:
    client.cookies.clear()
    return await client.post("/api/auth/refresh", json={"refreshToken": token})


async def _token_rows(hub: RunningHub, user: User) -> list[dict[str, object]]:
    rows = await hub.services.db.fetch(
        "SELECT * FROM refresh_tokens WHERE user_id = $1 ORDER BY created_at, id", user.id
    )
    return [dict(row) for row in rows]


async def test_body_refresh_rotates_the_token(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await login(client, await create_user(hub))
    with trio.fail_after(10):
        response = await _refresh_body(client, user.refresh_token)
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == {"accessToken", "refreshToken"}
    assert data["refreshToken"] != user.refresh_token
    assert response.headers["set-cookie"].startswith(f"agentim_rt={data['refreshToken']}; ")
    assert hub.services.tokens.verify(data["accessToken"]).user_id == user.id
    old, new = await _token_rows(hub, user)
    assert old["rotated_at"] is not None and new["rotated_at"] is None
    assert old["family_id"] == new["family_id"]
    assert len(str(new["token_hash"])) == 64  # SHA-256 hex, never the token itself
    assert data["refreshToken"] not in {str(old["token_hash"]), str(new["token_hash"])}
    me = await client.get(
        "/api/users/me", headers={"Authorization": f"Bearer {data['accessToken']}"}
    )
    assert me.status_code == 200
    assert not await hub.services.db.fetch(
        "SELECT 1 FROM audit_log WHERE user_id = $1 AND action LIKE '%refresh%'", user.id
    )


async def test_cookie_refresh_wins_over_body(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await create_user(hub)
    await login(client, user)  # the client keeps the agentim_rt cookie
    response = await client.post("/api/auth/refresh", json={"refreshToken": "ignored"})
    assert response.status_code == 200
    again = await client.post("/api/auth/refresh")  # the rotated cookie, no body at all
    assert again.status_code == 200


async def test_replayed_refresh_token_is_rejected_and_ends_that_session(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await login(client, await create_user(hub))
    first = await _refresh_body(client, user.refresh_token)
    successor = first.json()["data"]["refreshToken"]
    replay = await _refresh_body(client, user.refresh_token)
    assert replay.status_code == 401
    assert replay.json() == REVOKED
    assert replay.headers["set-cookie"] == CLEAR
    assert await _token_rows(hub, user) == []  # the whole family is gone
    assert (await _refresh_body(client, successor)).json() == REVOKED


async def test_two_devices_keep_working_after_one_refreshes(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await create_user(hub)
    laptop = await login(client, user)
    phone = await login(client, user)
    laptop_next = (await _refresh_body(client, laptop.refresh_token)).json()["data"]
    phone_next = await _refresh_body(client, phone.refresh_token)
    assert phone_next.status_code == 200
    assert (await _refresh_body(client, laptop_next["refreshToken"])).status_code == 200
    # a replay on the laptop ends the laptop's session only
    assert (await _refresh_body(client, laptop.refresh_token)).status_code == 401
    phone_token = phone_next.json()["data"]["refreshToken"]
    assert (await _refresh_body(client, phone_token)).status_code == 200


async def test_concurrent_refreshes_of_one_token_rotate_once(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await login(client, await create_user(hub))
    statuses: list[int] = []

    async def attempt() -> None:
        async with httpx.AsyncClient(base_url=hub.url) as other:
            response = await other.post(
                "/api/auth/refresh", json={"refreshToken": user.refresh_token}
            )
            statuses.append(response.status_code)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(attempt)
    assert sorted(statuses) == [200, 401, 401, 401]


async def test_refresh_failures(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await login(client, await create_user(hub))
    client.cookies.clear()
    cases = [
        ({"refreshToken": "garbage"}, 401, "Invalid or expired refresh token", True),
        ({"refreshToken": user.token}, 401, "Invalid token type", False),
        ({"refreshToken": ""}, 401, "Refresh token required", False),
        ({"refreshToken": 5}, 401, "Refresh token required", False),
        ({"refreshToken": "x" * 2001}, 401, "Refresh token required", False),
        ({}, 401, "Refresh token required", False),
        ([], 401, "Refresh token required", False),
    ]
    for body, status, error, clears in cases:
        response = await client.post("/api/auth/refresh", json=body)
        assert (response.status_code, response.json()) == (status, {"ok": False, "error": error})
        assert (response.headers.get("set-cookie") == CLEAR) is clears


async def test_refresh_without_a_usable_body_is_401(client: httpx.AsyncClient) -> None:
    """A26: no body, a non-JSON body or a body PostgreSQL could not store answers 401
    `Refresh token required` like the reference, never 400."""
    required = (401, {"ok": False, "error": "Refresh token required"})
    for content in (b"", b"not json", b"{", b'{"refreshToken": "a\\u0000b"}', b"null"):
        response = await client.post(
            "/api/auth/refresh", content=content, headers={"Content-Type": "application/json"}
        )
        assert (response.status_code, response.json()) == required, content
    bare = await client.post("/api/auth/refresh")
    assert (bare.status_code, bare.json()) == required


async def test_refresh_of_expired_or_deleted_rows(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await login(client, await create_user(hub))
    await hub.services.db.execute(
        "UPDATE refresh_tokens SET expires_at = '2000-01-01T00:00:00.000Z' WHERE user_id = $1",
        user.id,
    )
    assert (await _refresh_body(client, user.refresh_token)).json() == REVOKED
    await hub.services.db.execute("DELETE FROM users WHERE id = $1", user.id)
    gone = await _refresh_body(client, user.refresh_token)
    assert (gone.status_code, gone.json()) == (401, {"ok": False, "error": "User not found"})


async def test_at_most_ten_sessions_per_user(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await create_user(hub)
    sessions = [await login(client, user) for _ in range(11)]
    rows = await _token_rows(hub, user)
    assert len(rows) == 10
    assert (await _refresh_body(client, sessions[0].refresh_token)).json() == REVOKED
    assert (await _refresh_body(client, sessions[1].refresh_token)).status_code == 200
    await login(client, user)  # the cap counts live tokens; rotated rows go with their family
    assert len([r for r in await _token_rows(hub, user) if r["rotated_at"] is None]) == 10


async def test_production_cookie_is_secure_and_checks_origin(
    bridge: None, nursery: trio.Nursery, settings: object, redis_prefix: str
) -> None:
    production = await start_hub(nursery, attrs.evolve(settings, env="production"), redis_prefix)
    user = await create_user(production)
    async with httpx.AsyncClient(base_url=production.url) as client:
        signed = await client.post(
            "/api/auth/login", json={"username": user.username, "password": user.password}
        )
        cookie = signed.headers["set-cookie"]
        assert cookie.endswith("; HttpOnly; SameSite=Strict; Secure")
        token = signed.json()["data"]["refreshToken"]
        jar = {"Cookie": f"agentim_rt={token}"}  # httpx keeps Secure cookies off plain http
        evil = await client.post(
            "/api/auth/refresh", headers={**jar, "Origin": "https://evil.example"}
        )
        assert (evil.status_code, evil.json()) == (403, {"ok": False, "error": "Forbidden"})
        good = await client.post(
            "/api/auth/refresh", headers={**jar, "Origin": production.services.settings.cors_origin}
        )
        assert good.status_code == 200
        # the body path has no Origin check
        body = await client.post(
            "/api/auth/refresh",
            json={"refreshToken": good.json()["data"]["refreshToken"]},
            headers={"Origin": "https://evil.example"},
        )
        assert body.status_code == 200
