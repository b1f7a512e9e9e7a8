"""HTTP rate limits (api.md §2.4): fixed windows per IP in Redis, off in test mode."""

from __future__ import annotations

import logging

import attrs
import httpx
import pytest
import trio

from agentim.http.ratelimit import RateLimiter
from agentim.logs import JsonFormatter
from agentim.settings import Settings
from agentim.store.kv import Kv, client_for
from tests.conftest import start_hub
from tests.helpers import RunningHub, create_user, issue_token

TOO_MANY = '{"ok":false,"error":"Too many requests"}'


@pytest.fixture
async def dev_hub(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> RunningHub:
    """Rate limits are on outside test mode."""
    return await start_hub(nursery, attrs.evolve(settings, env="development"), redis_prefix)


async def test_test_mode_has_no_limits(hub: RunningHub, client: httpx.AsyncClient) -> None:
    for _ in range(15):
        response = await client.post("/api/auth/login", json={"username": "x", "password": "y"})
        assert response.status_code == 401
        assert "x-ratelimit-limit" not in response.headers
    assert await hub.services.kv.scan_keys("rl:*") == []


async def test_login_has_its_own_budget_of_twenty(
    dev_hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """E3: 20 logins a minute per IP (the reference's); refresh and logout are not counted."""
    async with httpx.AsyncClient(base_url=dev_hub.url) as client:
        with trio.fail_after(30):
            for n in range(20):
                response = await client.post("/api/auth/login", json={})
                assert response.status_code == 400  # reached the handler
                assert response.headers["x-ratelimit-limit"] == "20"  # auth wins over api
                assert response.headers["x-ratelimit-remaining"] == str(19 - n)
            with caplog.at_level(logging.WARNING, logger="RateLimit"):
                blocked = await client.post(
                    "/api/auth/login", json={"username": "a", "password": "b"}
                )
            refresh = await client.post("/api/auth/refresh", json={})
            logout = await client.post("/api/auth/logout")
    assert blocked.status_code == 429
    assert blocked.text == TOO_MANY
    assert blocked.headers["x-ratelimit-limit"] == "20"
    assert blocked.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(blocked.headers["retry-after"]) <= 60
    assert (refresh.status_code, refresh.headers["x-ratelimit-limit"]) == (401, "60")
    assert (logout.status_code, logout.headers["x-ratelimit-limit"]) == (401, "120")
    kv = dev_hub.services.kv
    assert await kv.get("rl:auth:127.0.0.1:60") == "21"
    assert 0 < await kv.ttl("rl:auth:127.0.0.1:60") <= 60
    assert await kv.get("rl:auth_refresh:127.0.0.1:60") == "1"
    assert await kv.get("rl:api:127.0.0.1:60") == "23"
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "RateLimit"]
    assert any("Too many requests" in line and "rate limit auth " in line for line in lines)
    # the blocked login never reached the handler: no audit row for it
    assert not await dev_hub.services.db.fetch(
        "SELECT 1 FROM audit_log WHERE action = 'login_failed' AND metadata = $1",
        '{"username":"a"}',
    )


async def test_refresh_has_its_own_budget_of_sixty(dev_hub: RunningHub) -> None:
    """A26: a page load refreshes; 60 a minute per IP, and a full refresh budget leaves login
    alone."""
    async with httpx.AsyncClient(base_url=dev_hub.url) as client:
        with trio.fail_after(60):
            for n in range(60):
                response = await client.post("/api/auth/refresh", json={"refreshToken": "x"})
                assert response.status_code == 401, response.text
                assert response.headers["x-ratelimit-limit"] == "60"
                assert response.headers["x-ratelimit-remaining"] == str(59 - n)
            blocked = await client.post("/api/auth/refresh")
            login = await client.post("/api/auth/login", json={})
    assert (blocked.status_code, blocked.text) == (429, TOO_MANY)
    assert 0 < int(blocked.headers["retry-after"]) <= 60
    assert (login.status_code, login.headers["x-ratelimit-remaining"]) == (400, "19")
    assert await dev_hub.services.kv.get("rl:auth_refresh:127.0.0.1:60") == "61"


async def test_logout_providers_and_unknown_auth_paths_spend_no_auth_budget(
    dev_hub: RunningHub,
) -> None:
    """E3: logout, logout-all and oauth/providers are unlimited (beyond `api`), and unknown
    /api/auth/* paths count against no auth bucket."""
    user = issue_token(dev_hub, await create_user(dev_hub))
    requests = [
        ("POST", "/api/auth/logout", {}, 401),
        ("POST", "/api/auth/logout-all", {}, 401),
        ("GET", "/api/auth/oauth/providers", {}, 200),
        ("GET", "/api/auth/me", user.headers, 404),
        ("POST", "/api/auth/register", {}, 404),
    ]
    async with httpx.AsyncClient(base_url=dev_hub.url) as client:
        with trio.fail_after(60):
            for _ in range(22):  # past login's 20: none of these is login
                for method, path, headers, status in requests:
                    response = await client.request(method, path, headers=headers)
                    assert response.status_code == status, (path, response.text)
                    assert response.headers["x-ratelimit-limit"] == "120", path
            out = await client.post("/api/auth/logout", headers=user.headers)
            login = await client.post("/api/auth/login", json={})
    assert out.status_code == 200
    assert (login.status_code, login.headers["x-ratelimit-remaining"]) == (400, "19")
    assert sorted(await dev_hub.services.kv.scan_keys("rl:auth*")) == ["rl:auth:127.0.0.1:60"]


async def test_api_class_headers_on_every_api_path(dev_hub: RunningHub) -> None:
    async with httpx.AsyncClient(base_url=dev_hub.url) as client:
        health = await client.get("/api/health")
        unknown = await client.get("/api/nothing-here")
    assert health.headers["x-ratelimit-limit"] == "120"
    assert health.headers["x-ratelimit-remaining"] == "119"
    assert unknown.headers["x-ratelimit-remaining"] == "118"


async def test_sens_class_counts_only_authenticated_password_changes(
    dev_hub: RunningHub,
) -> None:
    user = issue_token(dev_hub, await create_user(dev_hub))
    body = {"currentPassword": "wrong", "newPassword": "N3wPassword"}
    async with httpx.AsyncClient(base_url=dev_hub.url) as client:
        for _ in range(3):
            anonymous = await client.put("/api/users/me/password", json=body)
            assert anonymous.status_code == 401
        for n in range(5):
            response = await client.put("/api/users/me/password", json=body, headers=user.headers)
            assert response.status_code == 400
            assert response.headers["x-ratelimit-limit"] == "5"
            assert response.headers["x-ratelimit-remaining"] == str(4 - n)
        blocked = await client.put("/api/users/me/password", json=body, headers=user.headers)
    assert (blocked.status_code, blocked.text) == (429, TOO_MANY)


async def test_redis_outage_falls_back_to_memory_without_headers(
    bridge: None, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Kv(client_for("redis://127.0.0.1:1/0"))  # nothing listens on port 1
    limiter = RateLimiter(dead, enabled=True)
    with trio.fail_after(20), caplog.at_level(logging.WARNING, logger="RateLimit"):
        decisions = [await limiter.hit("sens", "198.51.100.7") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert all(d.headers() == {} for d in decisions)  # no X-RateLimit-*, no Retry-After
    assert any(
        "Redis unavailable for rate limit sens, counting per process" in r.getMessage()
        for r in caplog.records
    )
    other_ip = await limiter.hit("sens", "198.51.100.8")
    assert other_ip.allowed
