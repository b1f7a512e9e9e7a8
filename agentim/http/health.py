"""GET /api/health (api.md §12.1 plus `system` and the service states of DECISIONS D19)."""

from __future__ import annotations

import gc
import os
import resource
import time
from pathlib import Path
from typing import Any, Final

import trio
from quart import Blueprint, Response

from agentim.http._request import json_response, services
from agentim.protocol.timefmt import iso_now
from agentim.store.kv import KvUnavailable

blueprint = Blueprint("health", __name__)

CHECK_TIMEOUT_S: Final = 2.0
MIB: Final = 1024 * 1024


async def _timed(check: Any) -> tuple[bool, float]:
    started = time.perf_counter()
    with trio.move_on_after(CHECK_TIMEOUT_S):
        try:
            ok = bool(await check())
        except Exception:  # any failure of the probed service is a failed check
            ok = False
        return ok, round((time.perf_counter() - started) * 1000, 1)
    return False, CHECK_TIMEOUT_S * 1000


async def _database_ok() -> bool:
    return await services().db.fetchval("SELECT 1") == 1


async def _redis_ok() -> bool:
    try:
        return await services().kv.ping()
    except KvUnavailable:
        return False


async def timed_checks() -> tuple[tuple[bool, float], ...]:
    """(ok, latency ms) of PostgreSQL, Redis and the upload directory, each bounded."""
    return (await _timed(_database_ok), await _timed(_redis_ok), await _timed(_filesystem_ok))


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


async def _filesystem_ok() -> bool:
    return await trio.to_thread.run_sync(_writable, services().settings.upload_dir)


def rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def system_figures() -> dict[str, Any]:
    svc = services()
    return {
        "memoryMB": round(rss_bytes() / MIB),
        "heapUsedMB": round(rss_bytes() / MIB),
        "uptimeSeconds": round(time.monotonic() - svc.started_at),
        "gcObjects": len(gc.get_objects()),
        # Every open WebSocket of this process, signed in or not (a socket counts from its
        # handshake until it closes); the per-kind figures count signed-in sockets only.
        "openSockets": len(svc.hub.sessions) + len(svc.hub.pending),
        "authenticatedSockets": len(svc.hub.sessions),
        "clientSockets": svc.hub.count("client"),
        "gatewaySockets": svc.hub.count("gateway"),
        "pid": os.getpid(),
    }


@blueprint.get("/api/health")
async def health() -> Response:
    svc = services()
    (db_ok, db_ms), (redis_ok, redis_ms), (fs_ok, _) = await timed_checks()
    ok = db_ok and redis_ok and fs_ok
    body = {
        "ok": ok,
        "timestamp": iso_now(),
        "checks": {"database": db_ok, "redis": redis_ok, "filesystem": fs_ok},
        "system": system_figures(),
        "services": {
            "database": {"ok": db_ok, "embedded": svc.embedded_db, "latencyMs": db_ms},
            "redis": {"ok": redis_ok, "embedded": svc.embedded_redis, "latencyMs": redis_ms},
        },
    }
    return json_response(body, 200 if ok else 503)
