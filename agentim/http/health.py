"""GET /api/health (api.md §12.1 plus `system` and the service states of DIFFERENCES D19).

`system` is shown only to a caller on the hub's own host (a loopback peer that sent no
forwarding header) or one presenting an admin access token; everyone else gets none of it.
"""

from __future__ import annotations

import gc
import ipaddress
import os
import resource
import time
from pathlib import Path
from typing import Any, Final

import trio
from quart import Blueprint, Response, request

from agentim.errors import AgentImError
from agentim.http._request import authenticate_header, json_response, services
from agentim.protocol.timefmt import iso_now
from agentim.store import users
from agentim.store.kv import KvUnavailable

blueprint = Blueprint("health", __name__)

CHECK_TIMEOUT_S: Final = 2.0
MIB: Final = 1024 * 1024
FORWARDING_HEADERS: Final = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


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
    """(ok, latency ms) of PostgreSQL, Redis and the upload store, each bounded."""
    return (await _timed(_database_ok), await _timed(_redis_ok), await _timed(_filesystem_ok))


async def _filesystem_ok() -> bool:
    """The upload store: UPLOAD_DIR writable, or the S3 bucket answering."""
    return await services().blobs.writable()


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


def _local_caller() -> bool:
    """A loopback peer that did not come through a proxy (no forwarding header)."""
    try:
        peer = ipaddress.ip_address((request.remote_addr or "").split("%", 1)[0])
    except ValueError:
        return False
    return peer.is_loopback and not any(h in request.headers for h in FORWARDING_HEADERS)


async def _admin_caller() -> bool:
    if "Authorization" not in request.headers:
        return False
    try:
        caller = await authenticate_header()
    except AgentImError:  # a bad token just means no `system`: health never answers 401
        return False
    return await users.get_role(services().db, caller.user_id) == "admin"


async def may_see_system() -> bool:
    """DIFFERENCES D19: the hub's own host, or an admin."""
    return _local_caller() or await _admin_caller()


@blueprint.get("/api/health")
async def health() -> Response:
    svc = services()
    (db_ok, db_ms), (redis_ok, redis_ms), (fs_ok, _) = await timed_checks()
    ok = db_ok and redis_ok and fs_ok
    body: dict[str, Any] = {
        "ok": ok,
        "timestamp": iso_now(),
        "checks": {"database": db_ok, "redis": redis_ok, "filesystem": fs_ok},
    }
    if await may_see_system():
        body["system"] = system_figures()
    body["services"] = {
        "database": {"ok": db_ok, "embedded": svc.embedded_db, "latencyMs": db_ms},
        "redis": {"ok": redis_ok, "embedded": svc.embedded_redis, "latencyMs": redis_ms},
    }
    return json_response(body, 200 if ok else 503)
