"""A revoked access token stays refused while Redis is down and after Redis restarts without its
data, over HTTP (reads and writes) and WebSocket (clients and gateways); DIFFERENCES D7, D23."""

from __future__ import annotations

from typing import Any

import attrs
import httpx
import trio

from agentim import embedded
from agentim.auth.tokens import TokenService
from tests.chaos.conftest import PostgresServer, RedisServer, admin_http, new_user
from tests.conftest import TEST_JWT_SECRET
from tests.e2e.conftest import HubProcess, SpawnHub
from tests.gateway_helpers import connect_gateway
from tests.helpers import User, login
from tests.ws.wsclient import connect

SCENARIO_S = 90  # hard bound on each scenario: a hub start, a Redis kill and restart
REVOKED = {"ok": False, "error": "Token revoked"}


async def _get_me(hub: HubProcess, user: User) -> httpx.Response:
    async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
        return await http.get("/api/users/me", headers=user.headers)


async def _create_room(hub: HubProcess, user: User) -> httpx.Response:
    async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
        return await http.post(
            "/api/rooms", json={"name": "durable", "type": "group"}, headers=user.headers
        )


async def _client_auth(hub: HubProcess, user: User) -> dict[str, Any]:
    async with connect(hub.ws_url) as client:
        return await client.auth(user)


async def _gateway_auth(hub: HubProcess, user: User) -> dict[str, Any]:
    async with connect_gateway(hub.ws_url) as gateway:
        return await gateway.auth(user)


async def _assert_refused(hub: HubProcess, user: User) -> None:
    """Every way in refuses the token with the revocation text."""
    for response in (await _get_me(hub, user), await _create_room(hub, user)):
        assert response.status_code == 401, response.text
        assert response.json() == REVOKED
    assert await _client_auth(hub, user) == {
        "type": "server:auth_result", "ok": False, "error": "Token revoked",
    }  # fmt: skip
    assert await _gateway_auth(hub, user) == {
        "type": "server:gateway_auth_result", "ok": False, "error": "Token revoked",
    }  # fmt: skip


async def _assert_accepted(hub: HubProcess, user: User) -> None:
    assert (await _get_me(hub, user)).status_code == 200
    assert (await _client_auth(hub, user))["ok"] is True


async def _redis_get(redis: RedisServer, key: str) -> str | None:
    def read() -> str | None:
        with redis.client() as client:
            value = client.get(key)
        return value.decode() if isinstance(value, bytes) else None

    return await trio.to_thread.run_sync(read)


async def psql(postgres: PostgresServer, query: str) -> str:
    """One query's unaligned output through psql (the suite's PostgreSQL client)."""
    argv = [embedded.pg_bin("psql"), "-X", "-A", "-t", postgres.url, "-c", query]
    result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    return result.stdout.decode().strip()


async def _cutoff_in_postgres(postgres: PostgresServer, user_id: str) -> int:
    found = await psql(postgres, (
        "SELECT (extract(epoch FROM revoked_at) * 1000)::bigint FROM revoked_tokens "
        f"WHERE user_id = '{user_id}' AND token_hash = '*'"
    ))  # fmt: skip
    assert found, "no durable cut-off"
    return int(found)


async def _new_user(hub: HubProcess) -> User:
    admin = await admin_http(hub)
    try:
        return await new_user(admin)
    finally:
        await admin.aclose()


async def test_a_logout_holds_while_redis_is_down_and_after_it_restarts_empty(
    chaos_hub: SpawnHub, own_redis: RedisServer, own_postgres: PostgresServer
) -> None:
    with trio.fail_after(SCENARIO_S):
        hub = await chaos_hub()
        user = await _new_user(hub)
        await _assert_accepted(hub, user)
        async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
            out = await http.post("/api/auth/logout-all", headers=user.headers)
            assert out.status_code == 200, out.text
            fresh = await login(http, user)  # signed in again after the logout
        await _assert_refused(hub, user)
        cutoff = await _redis_get(own_redis, f"revoked:{user.id}")

        await own_redis.kill()
        await _assert_refused(hub, user)
        await _assert_accepted(hub, fresh)

        await own_redis.start()  # empty: revoked:<userId> is gone
        assert await _redis_get(own_redis, f"revoked:{user.id}") is None
        await _assert_refused(hub, user)
        await _assert_accepted(hub, fresh)
        # the fast path was rebuilt from PostgreSQL by the first check, to the same millisecond
        assert cutoff == str(await _cutoff_in_postgres(own_postgres, user.id))
        assert await _redis_get(own_redis, f"revoked:{user.id}") == cutoff
        assert hub.fatal_lines() == []


async def test_a_logout_during_the_outage_holds_and_reaches_redis_when_it_is_back(
    chaos_hub: SpawnHub, own_redis: RedisServer, own_postgres: PostgresServer
) -> None:
    with trio.fail_after(SCENARIO_S):
        hub = await chaos_hub()
        user = await _new_user(hub)
        await _assert_accepted(hub, user)  # "nothing revoked" is now cached in Redis

        await own_redis.kill()
        async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
            out = await http.post("/api/auth/logout-all", headers=user.headers)
        assert out.status_code == 200, out.text
        await _assert_refused(hub, user)

        await own_redis.start()
        await _assert_refused(hub, user)
        cutoff = str(await _cutoff_in_postgres(own_postgres, user.id))
        with trio.fail_after(10):  # the revoking process copies it into Redis by itself
            while await _redis_get(own_redis, f"revoked:{user.id}") != cutoff:  # noqa: ASYNC110
                await trio.sleep(0.1)  # a key in another process's Redis: polling is the way
        assert hub.fatal_lines() == []


async def test_the_cut_off_stays_exact_to_the_millisecond_after_redis_lost_it(
    chaos_hub: SpawnHub, own_redis: RedisServer
) -> None:
    """D7: issued at the cut-off → refused; one millisecond later → accepted."""
    with trio.fail_after(SCENARIO_S):
        hub = await chaos_hub()
        user = await _new_user(hub)
        async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
            out = await http.post("/api/auth/logout-all", headers=user.headers)
            assert out.status_code == 200, out.text
        cutoff = int(await _redis_get(own_redis, f"revoked:{user.id}") or 0)
        await own_redis.kill()
        await own_redis.start()

        tokens = TokenService(TEST_JWT_SECRET, None, 900, 86400)
        at_cutoff = attrs.evolve(user, token=tokens.issue(user.id, user.username, "access",
                                                          now_ms=cutoff))  # fmt: skip
        after = attrs.evolve(user, token=tokens.issue(user.id, user.username, "access",
                                                      now_ms=cutoff + 1))  # fmt: skip
        assert (await _get_me(hub, at_cutoff)).json() == REVOKED
        assert (await _get_me(hub, after)).status_code == 200
