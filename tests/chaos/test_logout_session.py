"""A plain logout revokes exactly one access token and its session (DIFFERENCES D23): the token
stays refused while Redis is down and after Redis restarts without its data, and the user's
other session keeps working throughout (HTTP, client and gateway sockets)."""

from __future__ import annotations

import httpx
import trio

from agentim.auth.tokens import digest
from tests.chaos.conftest import PostgresServer, RedisServer
from tests.chaos.test_revocation_durable import (
    REVOKED,
    SCENARIO_S,
    _assert_accepted,
    _assert_refused,
    _new_user,
    _redis_get,
    psql,
)
from tests.e2e.conftest import HubProcess, SpawnHub
from tests.helpers import User, login

REFRESH_DEAD = {"ok": False, "error": "Refresh token revoked or invalid"}


async def _logout(hub: HubProcess, user: User) -> None:
    async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
        out = await http.post("/api/auth/logout", headers=user.headers)
    assert out.status_code == 200, out.text


async def _refresh(hub: HubProcess, user: User) -> httpx.Response:
    async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
        return await http.post("/api/auth/refresh", json={"refreshToken": user.refresh_token})


async def _two_sessions(hub: HubProcess) -> tuple[User, User]:
    user = await _new_user(hub)
    async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
        return user, await login(http, user)


async def _token_rows(postgres: PostgresServer, user_id: str) -> str:
    return await psql(postgres, (
        "SELECT id FROM revoked_tokens "
        f"WHERE user_id = '{user_id}' AND expires_at > now() ORDER BY id"
    ))  # fmt: skip


async def test_a_logged_out_token_stays_refused_after_redis_restarts_empty(
    chaos_hub: SpawnHub, own_redis: RedisServer, own_postgres: PostgresServer
) -> None:
    with trio.fail_after(SCENARIO_S):
        hub = await chaos_hub()
        gone, kept = await _two_sessions(hub)
        await _logout(hub, gone)
        key = f"revoked_token:{digest(gone.token)}"
        assert await _redis_get(own_redis, key) == "1"
        assert await _redis_get(own_redis, f"revoked:{gone.id}") in (None, "0")
        assert await _token_rows(own_postgres, gone.id) == f"token:{digest(gone.token)}"

        await own_redis.kill()
        await _assert_refused(hub, gone)
        await _assert_accepted(hub, kept)

        await own_redis.start()  # empty
        assert await _redis_get(own_redis, key) is None
        await _assert_refused(hub, gone)
        await _assert_accepted(hub, kept)
        assert await _redis_get(own_redis, key) == "1"  # rebuilt from PostgreSQL
        assert (await _refresh(hub, gone)).json() == REFRESH_DEAD
        assert (await _refresh(hub, kept)).status_code == 200
        assert hub.fatal_lines() == []


async def test_a_logout_during_the_outage_holds_and_reaches_redis_when_it_is_back(
    chaos_hub: SpawnHub, own_redis: RedisServer
) -> None:
    with trio.fail_after(SCENARIO_S):
        hub = await chaos_hub()
        gone, kept = await _two_sessions(hub)
        await _assert_accepted(hub, gone)  # "not revoked" is now cached in Redis

        await own_redis.kill()
        await _logout(hub, gone)
        await _assert_refused(hub, gone)
        await _assert_accepted(hub, kept)

        await own_redis.start()
        await _assert_refused(hub, gone)
        key = f"revoked_token:{digest(gone.token)}"
        with trio.fail_after(10):  # the revoking process copies it into Redis by itself
            while await _redis_get(own_redis, key) != "1":  # noqa: ASYNC110
                await trio.sleep(0.1)  # a key in another process's Redis: polling is the way
        await _assert_accepted(hub, kept)
        async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
            me = await http.get("/api/users/me", headers=gone.headers)
        assert me.json() == REVOKED
        assert hub.fatal_lines() == []
