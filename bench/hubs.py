"""Hub processes for the bench: `python -m agentim serve` on consecutive ports."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from functools import partial

import attrs
import trio

READY_LINE = b"AgentIM server running at"


@attrs.frozen
class Hub:
    url: str
    pid: int


def add_hub_arguments(parser: argparse.ArgumentParser, *, base_port: int) -> None:
    """Where the hubs are (or what to spawn them against): shared by every bench scenario."""
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    parser.add_argument("--jwt-secret", default=os.environ.get("JWT_SECRET", ""))
    parser.add_argument("--base-port", type=int, default=base_port, help="first port for --spawn")
    parser.add_argument(
        "--api-admin", metavar="USER:PASSWORD", default="",
        help="make users and the room through the REST API of the first --url as this admin "
        "(any AgentIM-compatible server; see bench/api_setup.py) instead of in PostgreSQL",
    )  # fmt: skip


def check_hub_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.api_admin:
        if args.spawn or not args.url:
            parser.error("--api-admin measures running servers: give --url, not --spawn")
        if ":" not in args.api_admin:
            parser.error("--api-admin takes USER:PASSWORD")
        return
    if not args.database_url or not args.jwt_secret:
        parser.error("DATABASE_URL and JWT_SECRET are needed (env or flags)")
    if args.spawn and not args.redis_url:
        parser.error("--spawn needs REDIS_URL")
    if not args.spawn and not args.url:
        parser.error("give --url or --spawn")


def hub_env(port: int, args: argparse.Namespace, data_dir: str) -> dict[str, str]:
    """Development mode, quiet logs, and client and agent rate limits the load cannot hit: the bench
    measures throughput, not the limiter. Upgrades come with one X-Forwarded-For per client,
    so the per-IP upgrade limit holds as in production."""
    return {
        **os.environ, "AGENTIM_ENV": "development", "LOG_LEVEL": "warn", "HOST": "127.0.0.1",
        "PORT": str(port), "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
        "JWT_SECRET": args.jwt_secret, "ENCRYPTION_KEY": "bench-encryption-key-32-characters-x",
        "ADMIN_PASSWORD": "BenchAdmin123", "DATA_DIR": data_dir, "UPLOAD_DIR": data_dir + "/up",
        "TRUST_PROXY": "true", "CLIENT_RATE_LIMIT_WINDOW": "1", "CLIENT_RATE_LIMIT_MAX": "1000",
        "AGENT_RATE_LIMIT_WINDOW": "1", "AGENT_RATE_LIMIT_MAX": "1000",
        "MAX_WS_CONNECTIONS_PER_USER": "100", "ENV_FILE": data_dir + "/none.env",
    }  # fmt: skip


async def _watch(process: trio.Process, ready: trio.Event) -> None:
    assert process.stdout is not None
    async for chunk in process.stdout:  # keep draining: a full pipe would stall the hub
        if READY_LINE in chunk:
            ready.set()


async def spawn_hubs(nursery: trio.Nursery, count: int, args: argparse.Namespace) -> list[Hub]:
    hubs = []
    for n in range(count):
        port = args.base_port + n
        data_dir = tempfile.mkdtemp(prefix="agentim-bench-")
        process: trio.Process = await nursery.start(
            partial(trio.run_process, [sys.executable, "-m", "agentim", "serve"], check=False,
                    env=hub_env(port, args, data_dir), stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT)
        )  # fmt: skip
        ready = trio.Event()
        nursery.start_soon(_watch, process, ready)
        with trio.fail_after(60):
            await ready.wait()
        hubs.append(Hub(f"http://127.0.0.1:{port}", process.pid))
    return hubs
