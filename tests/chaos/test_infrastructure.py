"""The chaos suite's own servers really stop and come back (the other scenarios rely on it)."""

from __future__ import annotations

import redis
import trio

from tests.chaos.conftest import ChaosSpawn, PostgresServer, RedisServer, admin_http, new_user


async def test_own_redis_dies_and_returns_empty(own_redis: RedisServer) -> None:
    client = own_redis.client()
    try:
        await trio.to_thread.run_sync(client.set, "k", "v")
        await own_redis.kill()
        assert not await trio.to_thread.run_sync(_answers, client)
        await own_redis.start()
        assert await trio.to_thread.run_sync(client.get, "k") is None  # nothing persisted
    finally:
        client.close()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


async def test_hub_on_own_servers_survives_postgres_restart(
    chaos_hub: ChaosSpawn, own_postgres: PostgresServer
) -> None:
    with trio.fail_after(90):
        hub = await chaos_hub()
        http = await admin_http(hub)
        try:
            user = await new_user(http)
            await own_postgres.restart_fast()
            for _ in range(50):  # the pool notices the cut connections and reconnects
                response = await http.get(
                    "/api/users/me", headers={"Authorization": f"Bearer {user.token}"}
                )
                if response.status_code == 200:
                    break
                await trio.sleep(0.2)
            assert response.status_code == 200, response.text
            assert response.json()["data"]["username"] == user.username
            health = await http.get("/api/health")
            assert health.status_code == 200
        finally:
            await http.aclose()
