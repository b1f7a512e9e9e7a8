"""Fixtures: real PostgreSQL and Redis (TEST_* URLs, else the embedded servers), one database
and one Redis key prefix per test run, and the whole hub on port 0 per test."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import attrs
import httpx
import pytest
import redis
import trio

from agentim import embedded
from agentim.main import serve
from agentim.services import Services
from agentim.settings import Settings
from agentim.store.bridge import open_bridge
from tests.helpers import RunningHub

TEST_JWT_SECRET = "test-secret-that-is-at-least-32-characters-long"
ADMIN_PASSWORD = "AdminPass123"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _run_embedded(
    data_dir: Path, urls: list[str], ready: threading.Event, stop: threading.Event
) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            urls.append(await nursery.start(embedded.run_postgres, data_dir))
            urls.append(await nursery.start(embedded.run_redis, data_dir))
            ready.set()
            # stop is a threading.Event set from pytest's thread: poll it from this loop.
            while not stop.is_set():  # noqa: ASYNC110
                await trio.sleep(0.2)
            nursery.cancel_scope.cancel()

    trio.run(main)


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    """A data directory for embedded servers outside pytest's tmp tree: pytest resets its own
    root to mode 0700 at every start, which would lock out the unprivileged postgres user."""
    path = Path(tempfile.mkdtemp(prefix="agentim-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server_urls() -> Iterator[tuple[str, str]]:
    """(postgres server URL, redis URL): the TEST_* services, else embedded ones for the run."""
    db_url, redis_url = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    if db_url and redis_url:
        yield db_url, redis_url
        return
    urls: list[str] = []
    ready, stop = threading.Event(), threading.Event()
    data_dir = Path(tempfile.mkdtemp(prefix="agentim-test-services-"))
    thread = threading.Thread(target=_run_embedded, args=(data_dir, urls, ready, stop), daemon=True)
    thread.start()
    if not ready.wait(120):
        raise RuntimeError("embedded PostgreSQL/Redis did not start")
    yield db_url or urls[0], redis_url or urls[1]
    stop.set()
    thread.join(30)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(server_urls: tuple[str, str]) -> Iterator[str]:
    """A fresh database for this test run, dropped at the end."""
    name = f"agentim_test_{os.getpid()}_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_with_database(server_urls[0], "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield _with_database(server_urls[0], name)
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url(server_urls: tuple[str, str]) -> str:
    return server_urls[1]


@pytest.fixture(scope="session")
def redis_prefix(redis_url: str) -> Iterator[str]:
    """Every key and channel of this run lives under this prefix; removed at the end."""
    prefix = f"agentim-test:{os.getpid()}:{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    return Settings(
        env="test",
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=TEST_JWT_SECRET,
        encryption_key="test-encryption-key-that-is-32-chars-plus",
        admin_username="admin",
        admin_password=ADMIN_PASSWORD,
        bcrypt_rounds=4,
        upload_dir=tmp_path / "uploads",
        log_level="info",
        cors_origin="http://localhost:5173",
    )


@pytest.fixture
async def bridge() -> AsyncIterator[None]:
    """One asyncio loop shared by the hub and the test, so tests can use hub.services."""
    async with open_bridge():
        yield


async def start_hub(nursery: trio.Nursery, settings: Settings, redis_prefix: str) -> RunningHub:
    holder: list[Services] = []
    shutdown = trio.Event()
    urls = await nursery.start(
        partial(serve, settings, shutdown=shutdown, redis_prefix=redis_prefix, ready=holder.append)
    )
    running = RunningHub(url=urls[0], services=holder[0], shutdown=shutdown)
    for key in await running.services.kv.scan_keys("*"):
        await running.services.kv.delete(key)
    return running


@pytest.fixture
async def hub(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> RunningHub:
    return await start_hub(nursery, settings, redis_prefix)


@pytest.fixture
async def client(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        yield http


@pytest.fixture
def evolve(settings: Settings):  # type: ignore[no-untyped-def]
    return partial(attrs.evolve, settings)
