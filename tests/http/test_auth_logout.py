"""POST /api/auth/logout ends the presenting session only; POST /api/auth/logout-all ends every
session (api.md §4.9, DIFFERENCES D7, D23, head-gap A27, E2). Real HTTP and sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import httpx
import pytest
import trio

from agentim.auth.tokens import digest
from agentim.protocol.events import Target
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.gateway_helpers import Gateway, signed_in_gateway
from tests.helpers import RunningHub, User, create_user, login
from tests.ws.wsclient import Client, signed_in

REVOKED = {"ok": False, "error": "Token revoked"}
REFRESH_DEAD = {"ok": False, "error": "Refresh token revoked or invalid"}
SESSION_REVOKED = {"type": "server:error", "code": "SESSION_REVOKED", "message": "Session revoked"}
CLEAR = "agentim_rt=; Max-Age=0; Path=/api/auth"


@asynccontextmanager
async def browser(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    """One browser: its own cookie jar (the refresh cookie of its session)."""
    async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
        yield http


async def _me(http: httpx.AsyncClient, user: User) -> httpx.Response:
    return await http.get("/api/users/me", headers=user.headers)


async def _refresh_body(hub: RunningHub, token: str) -> httpx.Response:
    async with browser(hub) as http:  # no cookie: the body is read
        return await http.post("/api/auth/refresh", json={"refreshToken": token})


async def _alive(client: Client) -> None:
    await client.send({"type": "client:ping", "ts": 7})
    assert await client.receive_type("server:pong") == {"type": "server:pong", "ts": 7}


async def _revoked_socket(client: Client) -> None:
    assert await client.receive_type("server:error") == SESSION_REVOKED
    closed = await client.closed()
    assert (closed.code, closed.reason) == (1008, "Session revoked")


async def test_logout_ends_only_the_presenting_session(hub: RunningHub) -> None:
    """Browser A logs out; browser B, B's socket and the user's gateway stay connected."""
    user = await create_user(hub)
    with trio.fail_after(30):
        async with browser(hub) as http_a, browser(hub) as http_b, browser(hub) as cli:
            a, b, machine = (
                await login(http_a, user),
                await login(http_b, user),
                await login(cli, user),
            )
            async with (
                signed_in(hub, a) as socket_a,
                signed_in(hub, b) as socket_b,
                signed_in_gateway(hub, machine) as gateway,
            ):
                hub.services.events.captured = []
                out = await http_a.post("/api/auth/logout", headers=a.headers)
                assert (out.status_code, out.text) == (200, '{"ok":true}')
                assert out.headers["set-cookie"] == CLEAR
                await _revoked_socket(socket_a)  # the socket of exactly that token
                await _alive(socket_b)
                await gateway.sync()
                await gateway.nothing(ignore=("server:pong",))
            assert (await _me(http_a, a)).json() == REVOKED
            assert (await _refresh_body(hub, a.refresh_token)).json() == REFRESH_DEAD
            assert (await _me(http_b, b)).status_code == 200
            renewed = await http_b.post("/api/auth/refresh")  # B's cookie still works
            assert renewed.status_code == 200, renewed.text
            assert (await _refresh_body(hub, machine.refresh_token)).status_code == 200
            again = await login(http_a, user)  # right after the logout, same second
            assert (await _me(http_a, again)).status_code == 200
    controls = [e for e in hub.services.events.captured if e.target == Target.CONTROL]
    assert [(e.target_id, e.control) for e in controls] == [
        (user.id, {"action": "revoke_token", "token": digest(a.token)})
    ]
    await _assert_one_token_revoked(hub, user, a)


async def _assert_one_token_revoked(hub: RunningHub, user: User, session: User) -> None:
    """PostgreSQL has exactly one per-token row and no per-user cut-off; Redis the fast path."""
    rows = await hub.services.db.fetch(
        "SELECT id, token_hash, expires_at > now() AS live FROM revoked_tokens WHERE user_id = $1",
        user.id,
    )
    token_hash = digest(session.token)
    assert [dict(r) for r in rows] == [
        {"id": f"token:{token_hash}", "token_hash": token_hash, "live": True}
    ]
    kv = hub.services.kv
    assert await kv.get(f"revoked_token:{token_hash}") == "1"
    assert 0 < await kv.ttl(f"revoked_token:{token_hash}") <= hub.services.settings.access_ttl_s
    assert await kv.get(f"revoked:{user.id}") in (None, "0")  # no cut-off for the user
    audit = await hub.services.db.fetch(
        "SELECT ip_address, metadata FROM audit_log WHERE action = 'logout' AND user_id = $1",
        user.id,
    )
    assert [dict(r) for r in audit] == [{"ip_address": "127.0.0.1", "metadata": None}]


async def test_logout_with_only_the_access_token_still_ends_its_refresh_family(
    hub: RunningHub,
) -> None:
    """A client that sends no refresh token (no cookie, no body): the access token names its
    session, so that session's refresh tokens die too, and only those."""
    user = await create_user(hub)
    async with browser(hub) as http:
        first, second = await login(http, user), await login(http, user)
        rotated = await _refresh_body(hub, first.refresh_token)  # the family has two rows now
        newest = rotated.json()["data"]["refreshToken"]
        http.cookies.clear()
        assert (await http.post("/api/auth/logout", headers=first.headers)).status_code == 200
        assert (await _refresh_body(hub, newest)).json() == REFRESH_DEAD
        assert (await _refresh_body(hub, second.refresh_token)).status_code == 200
        assert (await _me(http, second)).status_code == 200


async def test_logout_ignores_a_refresh_token_of_another_user(hub: RunningHub) -> None:
    alice, bob = await create_user(hub), await create_user(hub)
    async with browser(hub) as http:
        a, b = await login(http, alice), await login(http, bob)
        http.cookies.clear()
        out = await http.post(
            "/api/auth/logout", headers=a.headers, json={"refreshToken": b.refresh_token}
        )
        assert out.status_code == 200
        assert (await _refresh_body(hub, b.refresh_token)).status_code == 200
        assert (await _me(http, b)).status_code == 200


async def test_logout_all_ends_every_session_and_socket(hub: RunningHub) -> None:
    user = await create_user(hub)
    with trio.fail_after(30):
        async with browser(hub) as http_a, browser(hub) as http_b:
            a, b = await login(http_a, user), await login(http_b, user)
            async with signed_in(hub, b) as socket_b, signed_in_gateway(hub, b) as gateway:
                out = await http_a.post("/api/auth/logout-all", headers=a.headers)
                assert (out.status_code, out.text) == (200, '{"ok":true}')
                assert out.headers["set-cookie"] == CLEAR
                await _revoked_socket(socket_b)
                await _gateway_revoked(gateway)
            for session in (a, b):
                assert (await _me(http_b, session)).json() == REVOKED
                assert (await _refresh_body(hub, session.refresh_token)).json() == REFRESH_DEAD
            assert (await _me(http_a, await login(http_a, user))).status_code == 200
    assert int(await hub.services.kv.get(f"revoked:{user.id}") or 0) > 0
    rows = await hub.services.db.fetch(
        "SELECT metadata FROM audit_log WHERE action = 'logout' AND user_id = $1", user.id
    )
    assert [r["metadata"] for r in rows] == ['{"everywhere":true}']


async def _gateway_revoked(gateway: Gateway) -> None:
    closed = await gateway.closed()
    assert closed.code == 1008


async def test_logout_needs_an_access_token(client: httpx.AsyncClient) -> None:
    for path in ("/api/auth/logout", "/api/auth/logout-all"):
        response = await client.post(path)
        assert (response.status_code, response.json()) == (
            401,
            {"ok": False, "error": "Unauthorized"},
        )


async def test_logged_out_token_cannot_log_out_again(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await login(client, await create_user(hub))
    await client.post("/api/auth/logout", headers=user.headers)
    for path in ("/api/auth/logout", "/api/auth/logout-all"):
        second = await client.post(path, headers=user.headers)
        assert (second.status_code, second.json()) == (401, REVOKED)


async def test_unknown_auth_route_is_plain_404(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/api/auth/me"),
        ("GET", "/api/auth/login"),
        ("POST", "/api/auth/register"),
        ("GET", "/api/auth/oauth/github/profile"),
        ("POST", "/api/auth/oauth/providers"),
        ("POST", "/api/auth/oauth/github"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 404
        assert response.text == "404 Not Found"
        assert response.headers["content-type"] == "text/plain; charset=UTF-8"
    unconfigured = await client.get("/api/auth/oauth/github")  # a route since A5: JSON 400
    assert (unconfigured.status_code, unconfigured.json()) == (
        400, {"ok": False, "error": "Provider not configured"},
    )  # fmt: skip


async def test_oauth_providers_empty_without_clients(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/auth/oauth/providers")
    assert (response.status_code, response.text) == (200, '{"ok":true,"data":[]}')


@pytest.mark.parametrize(
    ("configured", "listed"),
    [
        ({"oauth_github_client_id": "gh", "oauth_github_client_secret": "s"}, ["github"]),
        ({"oauth_github_client_id": "gh"}, []),  # a provider needs its secret too
        (
            {
                "oauth_github_client_id": "gh",
                "oauth_github_client_secret": "s",
                "oauth_google_client_id": "go",
                "oauth_google_client_secret": "t",
            },
            ["github", "google"],
        ),
    ],
)
async def test_oauth_providers_lists_configured_clients(
    bridge: None,
    nursery: trio.Nursery,
    settings: Settings,
    redis_prefix: str,
    configured: dict[str, str],
    listed: list[str],
) -> None:
    hub = await start_hub(nursery, attrs.evolve(settings, **configured), redis_prefix)
    async with browser(hub) as http:
        response = await http.get("/api/auth/oauth/providers")
    assert response.json() == {"ok": True, "data": listed}


def test_oauth_settings_come_from_the_environment() -> None:
    env = {
        "OAUTH_GOOGLE_CLIENT_ID": "id",
        "OAUTH_GOOGLE_CLIENT_SECRET": "s3cr3t-value",
        "OAUTH_GITHUB_CLIENT_ID": "",
    }
    settings = Settings.from_env(env)
    assert settings.oauth_providers == ["google"]
    assert "s3cr3t-value" not in repr(settings)
