"""Run `python -m agentim …` as a real process, as an operator would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTIM_", "NODE_ENV"))}
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "JWT_SECRET",
        "ENCRYPTION_KEY",
        "ADMIN_PASSWORD",
        "CORS_ORIGIN",
        "UPLOAD_DIR",
        "DATA_DIR",
        "PORT",
        "LOG_LEVEL",
    ):
        env.pop(name, None)
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentim", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@attrs.define
class Server:
    proc: subprocess.Popen[str]
    port: int
    lines: list[str]

    def stop(self, timeout: float = 15) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines += out.splitlines()
        return self.proc.returncode, time.monotonic() - started


@contextmanager
def running_server(env: Mapping[str, str], cwd: Path, *, timeout: float = 90) -> Iterator[Server]:
    """Start `agentim serve`, wait for the running line, SIGTERM/kill on exit."""
    port = int(env["PORT"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentim", "serve"],
        env=dict(env),
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, port, [])
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError("server exited early:\n" + "\n".join(server.lines))
            server.lines.append(line.rstrip("\n"))
            if "AgentIM server running at" in line:
                break
        else:
            raise AssertionError("server did not start in time")
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
