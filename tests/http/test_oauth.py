"""OAuth sign-in, linking and unlinking with GitHub and Google (head-gap A5, A6, C5), over HTTP
against a hub whose provider endpoints point at a fake provider on loopback
(tests/oauth_provider.py, OAUTH_TEST_PROVIDER_URL with AGENTIM_ENV=test).

Each test plays the browser: the hub's redirect to the provider, the provider's redirect back
with a code, then the callback with the state cookie."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import pytest
import trio

from agentim.settings import Settings
from tests.cli.procs import ROOT
from tests.conftest import start_hub
from tests.e2e.test_redis_outage import CuttableProxy
from tests.helpers import RunningHub, User, create_user, login
from tests.oauth_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider, serve_provider


@pytest.fixture
async def provider(nursery: trio.Nursery) -> FakeProvider:
    """A GitHub and a Google account of names no other test uses (the database is shared)."""
    tag = secrets.token_hex(4)
    octo = {
        "id": int(tag, 16), "login": f"octo{tag}", "name": f"The Octocat {tag}",
        "avatar_url": "https://a.test/o.png",
        "_emails": [
            {"email": "old@example.test", "primary": False, "verified": True},
            {"email": "octo@example.test", "primary": True, "verified": True},
            {"email": "fake@example.test", "primary": False, "verified": False},
        ],
    }  # fmt: skip
    gee = {"id": f"g{tag}", "email": "gee@example.test", "name": f"Gee Whiz {tag}",
           "picture": "https://a.test/g.png"}  # fmt: skip
    fake = FakeProvider(accounts={"github": octo, "google": gee})
    return await nursery.start(serve_provider, fake)


def _username(provider: FakeProvider, name: str) -> str:
    return str(provider.accounts[name]["name"]).replace(" ", "").lower()


def _account_id(provider: FakeProvider, name: str) -> str:
    return str(provider.accounts[name]["id"])


async def _links(hub: RunningHub, provider: FakeProvider, name: str) -> list[str]:
    """The users the provider's account is linked to."""
    rows = await hub.services.db.fetch(
        "SELECT user_id FROM oauth_accounts WHERE provider = $1 AND provider_account_id = $2",
        name,
        _account_id(provider, name),
    )
    return [r["user_id"] for r in rows]


def _oauth_settings(settings: Settings, provider: FakeProvider, **more: object) -> Settings:
    return attrs.evolve(
        settings,
        oauth_github_client_id=CLIENT_ID,
        oauth_github_client_secret=CLIENT_SECRET,
        oauth_google_client_id=CLIENT_ID,
        oauth_google_client_secret=CLIENT_SECRET,
        oauth_test_provider_url=provider.url,
        **more,
    )


@pytest.fixture
async def ohub(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str,
    provider: FakeProvider,
) -> RunningHub:  # fmt: skip
    return await start_hub(nursery, _oauth_settings(settings, provider), redis_prefix)


@asynccontextmanager
async def browser(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    """One browser: its own cookie jar; redirects are followed by hand."""
    async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
        yield http


async def _to_provider(http: httpx.AsyncClient, name: str) -> str:
    """The hub's redirect to the provider's authorize URL."""
    started = await http.get(f"/api/auth/oauth/{name}")
    assert started.status_code == 302, started.text
    return started.headers["location"]


async def _from_provider(authorize_url: str) -> str:
    """The provider's redirect back to the hub's callback (with code and state)."""
    async with httpx.AsyncClient(timeout=20) as other_site:
        answer = await other_site.get(authorize_url)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def _sign_in(http: httpx.AsyncClient, name: str) -> httpx.Response:
    callback = await _from_provider(await _to_provider(http, name))
    return await http.get(callback)


async def _session(http: httpx.AsyncClient) -> dict[str, object]:
    """What the web client's /auth/callback page does: refresh with the cookie, read /me."""
    refreshed = await http.post("/api/auth/refresh")
    assert refreshed.status_code == 200, refreshed.text
    token = refreshed.json()["data"]["accessToken"]
    me = await http.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    return {"token": token, **me.json()["data"]}


async def _audit(hub: RunningHub, action: str, user_id: str) -> list[dict[str, object]]:
    rows = await hub.services.db.fetch(
        "SELECT metadata FROM audit_log WHERE action = $1 AND user_id = $2", action, user_id
    )
    return [json.loads(r["metadata"]) if r["metadata"] else {} for r in rows]


async def test_providers_list_names_configured_providers(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str,
    provider: FakeProvider,
) -> None:  # fmt: skip
    github_only = attrs.evolve(_oauth_settings(settings, provider), oauth_google_client_secret=None)
    hub = await start_hub(nursery, github_only, redis_prefix)
    async with browser(hub) as http:
        listed = await http.get("/api/auth/oauth/providers")
        refused = await http.get("/api/auth/oauth/google")
        unknown = await http.get("/api/auth/oauth/gitlab")
    assert listed.json() == {"ok": True, "data": ["github"]}
    assert (refused.status_code, refused.json()) == (
        400, {"ok": False, "error": "Provider not configured"},
    )  # fmt: skip
    assert (unknown.status_code, unknown.json()) == (
        400,
        {"ok": False, "error": "Invalid provider"},
    )


async def test_authorize_redirect_carries_state_in_redis_and_cookie(
    ohub: RunningHub, provider: FakeProvider
) -> None:
    async with browser(ohub) as http:
        location = await _to_provider(http, "github")
        cookie = http.cookies.get("agentim_oauth_state")
    url = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{provider.url}/github/authorize"
    assert query["client_id"] == CLIENT_ID
    assert query["response_type"] == "code"
    assert query["scope"] == "read:user user:email"
    assert query["redirect_uri"] == f"{ohub.url}/api/auth/oauth/github/callback"
    assert query["state"] == cookie and len(cookie) == 32
    stored = await ohub.services.kv.get(f"oauth_state:{cookie}")
    assert stored is not None and json.loads(stored) == {"provider": "github"}
    assert 590 <= await ohub.services.kv.ttl(f"oauth_state:{cookie}") <= 600


async def test_new_user_signs_in_with_github(ohub: RunningHub, provider: FakeProvider) -> None:
    async with browser(ohub) as http:
        done = await _sign_in(http, "github")
        assert done.status_code == 302
        assert done.headers["location"] == "/auth/callback?provider=github"
        set_cookies = done.headers.get_list("set-cookie")
        session_cookie = next(c for c in set_cookies if c.startswith("agentim_rt="))
        assert "Path=/api/auth" in session_cookie and "HttpOnly" in session_cookie
        assert "SameSite=Lax" in session_cookie
        me = await _session(http)
    assert me["username"] == _username(provider, "github")
    assert me["displayName"] == provider.accounts["github"]["name"]
    assert me["avatarUrl"] == "https://a.test/o.png"
    assert provider.token_forms[-1]["redirect_uri"] == f"{ohub.url}/api/auth/oauth/github/callback"
    row = await ohub.services.db.fetchrow(
        "SELECT u.password_hash, o.provider_account_id, o.email, o.access_token "
        "FROM users u JOIN oauth_accounts o ON o.user_id = u.id WHERE u.id = $1",
        me["id"],
    )
    assert row is not None
    assert row["password_hash"] is None
    assert row["provider_account_id"] == _account_id(provider, "github")
    assert row["email"] == "octo@example.test"  # the primary verified address
    assert row["access_token"].startswith("enc:")  # sealed, never in clear
    assert row["access_token"] not in provider.tokens
    assert await _audit(ohub, "login", str(me["id"])) == [{"via": "oauth:github"}]


async def test_linked_account_signs_in_as_the_same_user(
    ohub: RunningHub, provider: FakeProvider
) -> None:
    async with browser(ohub) as first:
        await _sign_in(first, "google")
        me = await _session(first)
    username = _username(provider, "google")
    provider.accounts["google"] = {**provider.accounts["google"], "name": "Gee Renamed"}
    async with browser(ohub) as second:
        done = await _sign_in(second, "google")
        assert done.headers["location"] == "/auth/callback?provider=google"
        again = await _session(second)
    assert again["id"] == me["id"] and again["username"] == username
    assert await _links(ohub, provider, "google") == [me["id"]]
    row = await ohub.services.db.fetchrow(
        "SELECT display_name, refresh_token FROM oauth_accounts WHERE user_id = $1", me["id"]
    )
    assert row is not None and row["display_name"] == "Gee Renamed"
    assert row["refresh_token"].startswith("enc:")
    query = parse_qs(urlsplit(provider.authorize_queries[-1]["redirect_uri"]).query)
    assert query == {}
    assert provider.authorize_queries[-1]["access_type"] == "offline"
    assert provider.authorize_queries[-1]["prompt"] == "consent"


async def test_second_new_user_with_same_name_gets_a_numbered_username(
    ohub: RunningHub, provider: FakeProvider
) -> None:
    taken = _username(provider, "github")
    await create_user(ohub, taken)
    async with browser(ohub) as http:
        await _sign_in(http, "github")
        me = await _session(http)
    assert me["username"] == taken + "1"


async def test_callback_refuses_a_state_cookie_mismatch(
    ohub: RunningHub, provider: FakeProvider
) -> None:
    async with browser(ohub) as starter, browser(ohub) as victim:
        callback = await _from_provider(await _to_provider(starter, "github"))
        refused = await victim.get(callback)  # no state cookie in this browser
        assert refused.headers["location"] == "/login?error=state_mismatch"
        assert "agentim_rt" not in refused.headers.get("set-cookie", "")
        assert (await victim.post("/api/auth/refresh")).status_code == 401
        replay = await starter.get(callback)  # the Redis state is spent by the first try
        assert replay.headers["location"] == "/login?error=invalid_state"
    assert await _links(ohub, provider, "github") == []


async def test_callback_refuses_a_state_gone_from_redis(ohub: RunningHub) -> None:
    async with browser(ohub) as http:
        callback = await _from_provider(await _to_provider(http, "github"))
        state = http.cookies["agentim_oauth_state"]
        assert await ohub.services.kv.delete(f"oauth_state:{state}") == 1
        refused = await http.get(callback)
        assert refused.status_code == 302
        assert refused.headers["location"] == "/login?error=invalid_state"
        assert (await http.post("/api/auth/refresh")).status_code == 401


async def test_callback_refuses_another_providers_state(ohub: RunningHub) -> None:
    async with browser(ohub) as http:
        callback = await _from_provider(await _to_provider(http, "github"))
        wrong = callback.replace("/oauth/github/", "/oauth/google/")
        refused = await http.get(wrong)
    assert refused.headers["location"] == "/login?error=invalid_state"


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/api/auth/oauth/github/callback", "/login?error=missing_params"),
        ("/api/auth/oauth/github/callback?code=x", "/login?error=missing_params"),
        ("/api/auth/oauth/github/callback?error=access_denied&state=s",
         "/login?error=access_denied"),
        ("/api/auth/oauth/gitlab/callback?code=x&state=y", "/login?error=invalid_provider"),
        ("/api/auth/oauth/github/callback?code=x&state=unknown", "/login?error=invalid_state"),
    ],
)  # fmt: skip
async def test_callback_errors_redirect_to_login(
    ohub: RunningHub, path: str, location: str
) -> None:
    async with browser(ohub) as http:
        answer = await http.get(path)
    assert (answer.status_code, answer.headers["location"]) == (302, location)


async def test_a_code_the_provider_refuses_is_oauth_failed(
    ohub: RunningHub, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(ohub) as http:
        callback = await _from_provider(await _to_provider(http, "github"))
        code = parse_qs(urlsplit(callback).query)["code"][0]
        with caplog.at_level(logging.ERROR, logger="OAuth"):
            refused = await http.get(callback.replace(code, "not-a-code"))
    assert refused.headers["location"] == "/login?error=oauth_failed"
    [logged] = [r for r in caplog.records if r.name == "OAuth"]
    assert logged.getMessage().startswith("OAuth callback error for github: ")  # the guide's
    assert CLIENT_SECRET not in logged.getMessage()
    assert provider.token_forms[-1]["code"] == "not-a-code"
    assert await _links(ohub, provider, "github") == []


async def test_oauth_only_user_cannot_use_password_login(ohub: RunningHub) -> None:
    async with browser(ohub) as http:
        await _sign_in(http, "github")
        me = await _session(http)
        for password in ("", "anything-at-all"):
            refused = await http.post(
                "/api/auth/login", json={"username": me["username"], "password": password or "x"}
            )
            assert (refused.status_code, refused.json()) == (
                401, {"ok": False, "error": "Invalid credentials"},
            )  # fmt: skip
        changed = await http.put(
            "/api/users/me/password",
            json={"currentPassword": "whatever1", "newPassword": "NewPassw0rd!"},
            headers={"Authorization": f"Bearer {me['token']}"},
        )
    assert (changed.status_code, changed.json()) == (
        400, {"ok": False, "error": "No password set for this account"},
    )  # fmt: skip
    assert await _audit(ohub, "login_failed", str(me["id"])) == [{"noPassword": True}] * 2
    attempts = await ohub.services.db.fetchval(
        "SELECT failed_login_attempts FROM users WHERE id = $1", me["id"]
    )
    assert attempts == 0  # no lockout counting for a user who has no password


async def _password_user(hub: RunningHub, http: httpx.AsyncClient) -> User:
    user = await create_user(hub)
    return await login(http, user)


async def test_signed_in_user_links_github_through_the_link_route(
    ohub: RunningHub, provider: FakeProvider
) -> None:
    async with browser(ohub) as http:
        user = await _password_user(ohub, http)
        http.cookies.clear()  # only the Bearer token: the route's own path
        started = await http.post("/api/auth/oauth/github/link", headers=user.headers)
        assert started.status_code == 200, started.text
        url = started.json()["data"]["url"]
        assert url.startswith(f"{provider.url}/github/authorize?")
        assert parse_qs(urlsplit(url).query)["state"][0] == http.cookies["agentim_oauth_state"]
        done = await http.get(await _from_provider(url))
        assert done.headers["location"] == "/settings?linked=github"
        assert "agentim_rt=" not in done.headers.get("set-cookie", "")
        listed = await http.get("/api/users/me/oauth-accounts", headers=user.headers)
        again = await http.post("/api/auth/oauth/github/link", headers=user.headers)
    accounts = listed.json()["data"]
    assert [(a["provider"], a["providerAccountId"], a["email"]) for a in accounts] == [
        ("github", _account_id(provider, "github"), "octo@example.test")
    ]
    assert set(accounts[0]) == {
        "id", "provider", "providerAccountId", "email", "displayName", "avatarUrl", "createdAt",
        "updatedAt",
    }  # fmt: skip
    assert (again.status_code, again.json()) == (400, {"ok": False, "error": "Already linked"})
    assert await _audit(ohub, "oauth_link", user.id) == [{"provider": "github"}]
    async with browser(ohub) as later:  # the linked GitHub account now signs in as this user
        await _sign_in(later, "github")
        assert (await _session(later))["id"] == user.id


async def test_settings_page_link_uses_the_session_cookie(
    ohub: RunningHub, provider: FakeProvider
) -> None:
    """The web client's Settings page navigates to GET /api/auth/oauth/<provider>: with the
    browser's session cookie the flow links instead of creating a user."""
    async with browser(ohub) as http:
        user = await _password_user(ohub, http)
        done = await _sign_in(http, "google")
        assert done.headers["location"] == "/settings?linked=google"
        listed = await http.get("/api/users/me/oauth-accounts", headers=user.headers)
    assert [a["provider"] for a in listed.json()["data"]] == ["google"]
    assert await _links(ohub, provider, "google") == [user.id]  # no new user


async def test_linking_an_account_of_another_user_is_refused(
    ohub: RunningHub, provider: FakeProvider
) -> None:
    async with browser(ohub) as owner:
        await _sign_in(owner, "github")
        owner_me = await _session(owner)
    async with browser(ohub) as http:
        user = await _password_user(ohub, http)
        done = await _sign_in(http, "github")
        assert done.headers["location"] == "/settings?error=already_linked"
        listed = await http.get("/api/users/me/oauth-accounts", headers=user.headers)
    assert listed.json() == {"ok": True, "data": []}
    assert await _links(ohub, provider, "github") == [owner_me["id"]]


async def test_unlink(ohub: RunningHub) -> None:
    async with browser(ohub) as http:
        user = await _password_user(ohub, http)
        await _sign_in(http, "github")
        gone = await http.delete("/api/auth/oauth/github/unlink", headers=user.headers)
        again = await http.delete("/api/auth/oauth/github/unlink", headers=user.headers)
        bad = await http.delete("/api/auth/oauth/gitlab/unlink", headers=user.headers)
        anonymous = await http.delete("/api/auth/oauth/github/unlink")
        listed = await http.get("/api/users/me/oauth-accounts", headers=user.headers)
    assert (gone.status_code, gone.json()) == (200, {"ok": True})
    assert (again.status_code, again.json()) == (404, {"ok": False, "error": "Not linked"})
    assert (bad.status_code, bad.json()) == (400, {"ok": False, "error": "Invalid provider"})
    assert anonymous.status_code == 401
    assert listed.json() == {"ok": True, "data": []}
    assert await _audit(ohub, "oauth_unlink", user.id) == [{"provider": "github"}]


async def test_oauth_only_user_keeps_the_last_login_method(ohub: RunningHub) -> None:
    async with browser(ohub) as http:
        await _sign_in(http, "github")
        me = await _session(http)
        headers = {"Authorization": f"Bearer {me['token']}"}
        refused = await http.delete("/api/auth/oauth/github/unlink", headers=headers)
        assert (refused.status_code, refused.json()) == (
            400, {"ok": False, "error": "Cannot unlink last authentication method"},
        )  # fmt: skip
        linked = await _sign_in(http, "google")  # the session cookie: link Google to this user
        assert linked.headers["location"] == "/settings?linked=google"
        gone = await http.delete("/api/auth/oauth/github/unlink", headers=headers)
        last = await http.delete("/api/auth/oauth/google/unlink", headers=headers)
        listed = await http.get("/api/users/me/oauth-accounts", headers=headers)
    assert gone.status_code == 200
    assert last.json() == {"ok": False, "error": "Cannot unlink last authentication method"}
    assert [a["provider"] for a in listed.json()["data"]] == ["google"]


async def test_oauth_accounts_needs_a_token(ohub: RunningHub) -> None:
    async with browser(ohub) as http:
        answer = await http.get("/api/users/me/oauth-accounts")
    assert answer.status_code == 401


async def test_test_provider_url_is_ignored_outside_test_mode(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str,
    provider: FakeProvider,
) -> None:  # fmt: skip
    development = _oauth_settings(settings, provider, env="development")
    hub = await start_hub(nursery, development, redis_prefix)
    async with browser(hub) as http:
        location = await _to_provider(http, "github")
    assert location.startswith("https://github.com/login/oauth/authorize?")


def test_troubleshooting_lists_the_callback_errors_these_tests_produce() -> None:
    guide = (ROOT / "docs" / "TROUBLESHOOTING.md").read_text()
    section = guide.split("### OAuth sign-in returns to the login page with an error")[1]
    section = section.split("\n###")[0]
    bullets = [line for line in section.splitlines() if line.startswith("- ")]
    codes = {re.findall(r"`(\w+)`", line)[0] for line in bullets}  # each bullet's first code
    codes |= set(re.findall(r"`(\w+)`", bullets[-1]))  # the last bullet lists several
    assert codes == {
        "invalid_state", "state_mismatch", "oauth_failed", "missing_params", "invalid_provider",
        "access_denied",
    }  # fmt: skip


async def test_sign_in_works_while_redis_is_unreachable(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_url: str, redis_prefix: str,
    provider: FakeProvider, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The state is kept in the hub process meanwhile (D16), as the reference without Redis."""
    parts = urlsplit(redis_url)
    proxy = CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    await nursery.start(proxy.run)
    proxied = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    configured = _oauth_settings(settings, provider, redis_url=proxied)
    hub = await start_hub(nursery, configured, redis_prefix)
    proxy.cut()
    with trio.fail_after(60):
        async with browser(hub) as http, browser(hub) as other:
            done = await _sign_in(http, "github")
            assert done.headers["location"] == "/auth/callback?provider=github"
            me = await _session(http)
            callback = await _from_provider(await _to_provider(other, "github"))
            replay = await other.get(callback)
            again = await other.get(callback)  # the in-process state is one-time too
    assert me["username"] == _username(provider, "github")
    assert replay.headers["location"] == "/auth/callback?provider=github"
    assert again.headers["location"] == "/login?error=invalid_state"
    kept_here = "Redis unavailable for the OAuth state; keeping it in this process"
    assert [r.getMessage() for r in caplog.records].count(kept_here) == 2
