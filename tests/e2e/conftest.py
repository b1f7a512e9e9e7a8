"""Hub processes as operators run them: `python -m agentim serve` children sharing the test run's
PostgreSQL database, Redis server and key prefix, and the test JWT secret."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio

from tests.conftest import ADMIN_PASSWORD, TEST_JWT_SECRET

READY_LINE = b"AgentIM server running at"
START_TIMEOUT_S = 30.0


@attrs.define
class HubProcess:
    url: str
    process: trio.Process
    output: list[bytes] = attrs.field(factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def logged(self, text: str) -> bool:
        return any(text.encode() in line for line in self.output)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _pump(process: trio.Process, hub: HubProcess, ready: trio.Event) -> None:
    """Keep reading the child's stdout (a full pipe would stall it); note the ready line."""
    assert process.stdout is not None
    pending = b""
    async for chunk in process.stdout:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        hub.output.extend(lines)
        if any(READY_LINE in line for line in lines):
            ready.set()


SpawnHub = Callable[..., Awaitable[HubProcess]]


@pytest.fixture
def spawn_hub(
    nursery: trio.Nursery, database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> SpawnHub:
    """Start a hub child process; it is stopped (SIGTERM) when the test ends."""

    async def spawn(**extra_env: str) -> HubProcess:
        port = free_port()
        env = {
            **os.environ, "AGENTIM_ENV": "test", "HOST": "127.0.0.1", "PORT": str(port),
            "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": redis_prefix, "JWT_SECRET": TEST_JWT_SECRET,
            "ENCRYPTION_KEY": "test-encryption-key-that-is-32-chars-plus",
            "ADMIN_PASSWORD": ADMIN_PASSWORD, "DATA_DIR": str(tmp_path / f"data{port}"),
            "UPLOAD_DIR": str(tmp_path / f"uploads{port}"), "LOG_LEVEL": "info",
            "ENV_FILE": str(tmp_path / "no.env"), **extra_env,
        }  # fmt: skip
        process: trio.Process = await nursery.start(
            partial(trio.run_process, [sys.executable, "-m", "agentim", "serve"], env=env,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
                    deliver_cancel=_terminate)
        )  # fmt: skip
        hub = HubProcess(f"http://127.0.0.1:{port}", process)
        ready = trio.Event()
        nursery.start_soon(_pump, process, hub, ready)
        with trio.fail_after(START_TIMEOUT_S):
            await ready.wait()
        return hub

    return spawn


async def _terminate(process: trio.Process) -> None:
    process.terminate()  # SIGTERM: the hub's graceful shutdown (D14)
    with trio.move_on_after(10):
        await process.wait()
        return
    process.kill()
