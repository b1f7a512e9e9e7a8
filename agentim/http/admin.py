"""Admin pages' API (head-gap A1, A2): GET/PUT /api/admin/settings, GET /api/admin/metrics.

The settings routes are admin only (role read from the database on every call, api.md §2.7);
the metrics JSON is computed from the same counters as /api/metrics.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import trio
from quart import Blueprint, Response

from agentim import runtime_settings
from agentim.actions import settings as setting_actions
from agentim.errors import AgentImError, forbidden
from agentim.http._request import (
    client_ip,
    json_body,
    json_response,
    ok,
    principal,
    require_admin,
    require_auth,
    services,
)
from agentim.http.health import rss_bytes
from agentim.protocol.timefmt import iso_now
from agentim.routing.live_settings import RELOAD_TIMEOUT_S
from agentim.store import users

blueprint = Blueprint("admin", __name__)

MISSING_CHANGES: Final = 'Missing "changes" object'


@blueprint.get("/api/admin/settings")
@require_admin
async def get_settings() -> Response:
    live = services().live
    with trio.fail_after(RELOAD_TIMEOUT_S):
        await live.reload()  # the table is the truth; this also refreshes this process
    return ok(runtime_settings.listing(live.base, live.stored))


@blueprint.put("/api/admin/settings")
@require_admin
async def put_settings() -> Response:
    body = await json_body()
    changes = body.get("changes") if isinstance(body, dict) else None
    if isinstance(changes, list):  # JavaScript's Object.entries of an array: its indexes
        changes = {str(index): value for index, value in enumerate(changes)}
    if not isinstance(changes, dict):
        raise AgentImError(400, MISSING_CHANGES)
    texts = {str(key): runtime_settings.js_string(value) for key, value in changes.items()}
    result = await setting_actions.save_settings(
        services(), texts, user_id=principal().user_id, ip=client_ip()
    )
    if result.errors:
        body = {"ok": False, "error": "; ".join(result.errors), "data": {"updated": []}}
        return json_response(body, 400)
    return ok({"updated": result.updated})


def heap_bytes() -> int:
    """Private resident memory (resident minus shared pages): the interpreter's heap, near
    enough; RSS where /proc is missing."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
        return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return rss_bytes()


@blueprint.get("/api/admin/metrics")
@require_auth
async def admin_metrics() -> Response:
    svc = services()
    if await users.get_role(svc.db, principal().user_id) != "admin":
        raise forbidden("Forbidden")
    metrics = svc.metrics
    gauge = metrics.gauge_value
    data: dict[str, Any] = {
        "connections": {
            "clients": round(gauge("agentim_ws_client_connections")),
            "gateways": round(gauge("agentim_ws_gateway_connections")),
            "onlineUsers": round(gauge("agentim_online_users")),
            "connectedAgents": round(gauge("agentim_connected_agents")),
        },
        "process": {
            "uptimeSeconds": round(gauge("process_uptime_seconds")),
            "heapUsedBytes": heap_bytes(),
            "rssBytes": round(gauge("process_rss_bytes")),
        },
        "infrastructure": {"redisEnabled": True},  # the hub always runs with Redis (D15)
        "activity": {
            "messagesTotal": {
                **metrics.messages_total.snapshot(),
                **metrics.ws_messages_total.snapshot(),
                **metrics.api_errors_total.snapshot(),
            },
            "activeRooms": round(gauge("agentim_active_rooms")),
        },
        "performance": {
            "agentResponse": {"_": metrics.agent_response_duration.snapshot()},
            "httpRequest": {"_": metrics.http_duration.snapshot()},
        },
        "timestamp": iso_now(),
    }
    return ok(data)
