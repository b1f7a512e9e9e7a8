"""Hub processes as operators run them: `python -m agentim serve` children sharing the test run's
PostgreSQL database, Redis server and key prefix, and the test JWT secret."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

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

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines the process has printed so far."""
        records = []
        for line in self.output:
            if line.startswith(b"{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    def fatal_lines(self) -> list[dict[str, Any]]:
        """Log records at level 50 (fatal/critical) or above: a crash the operator would see."""
        return [r for r in self.log_records() if int(r.get("level", 0)) >= 50]

    async def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would end it; waits until it is gone."""
        self.process.kill()
        with trio.fail_after(10):
            await self.process.wait()

    async def terminate(self) -> int:
        """SIGTERM (graceful shutdown, D14); returns the exit code."""
        self.process.terminate()
        with trio.fail_after(20):
            return await self.process.wait()


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
    base = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "REDIS_KEY_PREFIX": redis_prefix}
    return partial(start_hub_process, nursery, tmp_path, base)


async def start_hub_process(
    nursery: trio.Nursery, tmp_path: Path, base_env: dict[str, str], **extra_env: str
) -> HubProcess:
    """`python -m agentim serve` in nursery with base_env (its database and Redis) and extra_env;
    returns once it logs that it serves. Cancelling nursery stops it with SIGTERM."""
    port = free_port()
    env = {
        **os.environ, "AGENTIM_ENV": "test", "HOST": "127.0.0.1", "PORT": str(port),
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENCRYPTION_KEY": "test-encryption-key-that-is-32-chars-plus",
        "ADMIN_PASSWORD": ADMIN_PASSWORD, "DATA_DIR": str(tmp_path / f"data{port}"),
        "UPLOAD_DIR": str(tmp_path / f"uploads{port}"), "LOG_LEVEL": "info",
        "ENV_FILE": str(tmp_path / "no.env"), **base_env, **extra_env,
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
    await _answers(hub, port)
    return hub


async def _answers(hub: HubProcess, port: int) -> None:
    """The ready line is printed once the port is bound; make sure it still accepts (a hub
    that died right after it says why here, instead of a test's connection error)."""
    with trio.fail_after(10):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                if hub.process.returncode is not None:
                    tail = b"\n".join(hub.output[-30:]).decode(errors="replace")
                    raise RuntimeError(f"hub exited ({hub.process.returncode}):\n{tail}") from None
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return


async def _terminate(process: trio.Process) -> None:
    process.terminate()  # SIGTERM: the hub's graceful shutdown (D14)
    with trio.move_on_after(10):
        await process.wait()
        return
    process.kill()
