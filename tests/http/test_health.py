"""GET /api/health against real PostgreSQL and Redis (api.md §12.1, D19)."""

from __future__ import annotations

import asyncpg
import httpx

from agentim.store.bridge import aio
from tests.helpers import RunningHub


async def test_health_reports_every_check_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert '"ok":true' in response.text
    body = response.json()
    assert body["checks"] == {"database": True, "redis": True, "filesystem": True}
    assert set(body["system"]) >= {"memoryMB", "heapUsedMB", "uptimeSeconds", "openSockets"}
    assert body["services"]["database"]["ok"] is True
    assert body["services"]["redis"]["ok"] is True


async def test_health_is_503_when_postgres_refuses(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    db = hub.services.db
    name = await db.fetchval("SELECT current_database()")
    admin_url = db.url.rsplit("/", 1)[0] + "/postgres"  # the blocking runs from another database
    admin = await aio(asyncpg.connect, admin_url)
    try:
        await aio(admin.execute, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await aio(
            admin.execute,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        )
        response = await client.get("/api/health")
        assert response.status_code == 503
        body = response.json()
        assert body["ok"] is False
        assert body["checks"]["database"] is False
        assert body["checks"]["redis"] is True
    finally:
        await aio(admin.execute, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await aio(admin.close)
