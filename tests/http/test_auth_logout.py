"""POST /api/auth/logout (api.md §4.9) and access-token revocation (§4.4, DECISIONS D7)."""

from __future__ import annotations

import httpx
import trio

from agentim.protocol.events import Target
from tests.helpers import RunningHub, User, create_user, login


async def _me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})


async def _logout(client: httpx.AsyncClient, user: User) -> httpx.Response:
    return await client.post("/api/auth/logout", headers=user.headers)


async def test_logout_revokes_tokens_and_a_fresh_login_works(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await login(client, await create_user(hub))
    hub.services.events.captured = []
    with trio.fail_after(10):
        response = await _logout(client, user)
    assert response.status_code == 200
    assert response.text == '{"ok":true}'
    assert response.headers["set-cookie"] == "agentim_rt=; Max-Age=0; Path=/api/auth"
    revoked = await _me(client, user.token)
    assert (revoked.status_code, revoked.json()) == (401, {"ok": False, "error": "Token revoked"})
    again = await login(client, user)  # right after the logout, same second
    assert (await _me(client, again.token)).status_code == 200
    # Redis: the cut-off in ms with the access-token lifetime as TTL
    kv = hub.services.kv
    assert int(await kv.get(f"revoked:{user.id}") or 0) > 0
    assert 0 < await kv.ttl(f"revoked:{user.id}") <= hub.services.settings.revocation_ttl_s
    # every refresh token of the user went with the logout
    client.cookies.clear()  # the re-login's cookie would win over the body
    assert (
        await client.post("/api/auth/refresh", json={"refreshToken": user.refresh_token})
    ).status_code == 401
    [event] = hub.services.events.captured
    assert (event.target, event.target_id) == (Target.CONTROL, user.id)
    assert event.control == {"action": "revoke_user"}
    rows = await hub.services.db.fetch(
        "SELECT ip_address, metadata FROM audit_log WHERE action = 'logout' AND user_id = $1",
        user.id,
    )
    assert [dict(r) for r in rows] == [{"ip_address": "127.0.0.1", "metadata": None}]


async def test_logout_revokes_every_device(hub: RunningHub, client: httpx.AsyncClient) -> None:
    user = await create_user(hub)
    laptop, phone = await login(client, user), await login(client, user)
    assert (await _logout(client, laptop)).status_code == 200
    assert (await _me(client, phone.token)).json()["error"] == "Token revoked"
    assert not await hub.services.db.fetch(
        "SELECT 1 FROM refresh_tokens WHERE user_id = $1", user.id
    )


async def test_logout_needs_an_access_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/logout")
    assert (response.status_code, response.json()) == (401, {"ok": False, "error": "Unauthorized"})


async def test_logged_out_token_cannot_log_out_again(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await login(client, await create_user(hub))
    await _logout(client, user)
    second = await _logout(client, user)
    assert (second.status_code, second.json()["error"]) == (401, "Token revoked")


async def test_unknown_auth_route_is_plain_404(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/api/auth/me"),
        ("GET", "/api/auth/login"),
        ("POST", "/api/auth/register"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 404
        assert response.text == "404 Not Found"
        assert response.headers["content-type"] == "text/plain; charset=UTF-8"
