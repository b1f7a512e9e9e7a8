"""Agents and gateways API (api.md §9): lists and reads from the store, writes via actions/agents.

Every route returns the enriched agent object of api.md §15.6 (`ownerName` on the shared list).
"""

from __future__ import annotations

import json
from typing import Any, Final

from quart import Blueprint, Response, request

from agentim.actions import agents
from agentim.errors import not_found
from agentim.http._request import check_ids, json_body, ok, principal, require_auth, services
from agentim.http.not_found import add_not_found_routes, authenticated
from agentim.http.users import page_param
from agentim.http.validate import Enum, parse_dict
from agentim.store import agents as store, gateways
from agentim.store.db import Row

blueprint = Blueprint("agents", __name__)

PAGE_DEFAULT: Final = 100  # api.md §2.12: limit 1..500, default 100
PAGE_MAX: Final = 500
UPDATE_SCHEMA: Final = {"visibility": Enum(values=("private", "shared"), optional=True)}


def agent_json(row: Row) -> dict[str, Any]:
    """The enriched agent (api.md §9, §15.6); absent computed keys stay absent."""
    agent: dict[str, Any] = {
        "id": row["id"], "name": row["name"], "type": row["type"], "status": row["status"],
        "visibility": row["visibility"], "gatewayId": row["gateway_id"],
        "workingDirectory": row["working_directory"],
    }  # fmt: skip
    capabilities = _parsed(row["capabilities"])
    if capabilities is not None:
        agent["capabilities"] = capabilities
    agent.update(
        connectionType=row["connection_type"], lastSeenAt=row["last_seen_at"],
        createdAt=row["created_at"], updatedAt=row["updated_at"],
    )  # fmt: skip
    if row["gw_id"] is not None:
        agent["deviceInfo"] = {
            "hostname": row["hostname"] or "", "platform": row["platform"] or "",
            "arch": row["arch"] or "", "nodeVersion": row["node_version"] or "",
        }  # fmt: skip
    return agent


def _parsed(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def shared_agent_json(row: Row) -> dict[str, Any]:
    agent = agent_json(row)
    if row["owner_name"] is not None:
        agent["ownerName"] = row["owner_name"]
    return agent


def gateway_json(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"], "userId": row["user_id"], "name": row["name"],
        "hostname": row["hostname"], "platform": row["platform"], "arch": row["arch"],
        "nodeVersion": row["node_version"], "connectedAt": row["connected_at"],
        "disconnectedAt": row["disconnected_at"], "createdAt": row["created_at"],
    }  # fmt: skip


def _page() -> tuple[int, int]:
    limit = page_param(request.args.get("limit"), default=PAGE_DEFAULT, lo=1, hi=PAGE_MAX)
    offset = page_param(request.args.get("offset"), default=0, lo=0, hi=2**62)
    return limit, offset


@blueprint.get("/api/agents")
@require_auth
async def list_agents() -> Response:
    limit, offset = _page()
    rows = await store.list_user_agents(
        services().db, principal().user_id, limit=limit, offset=offset
    )
    return ok([agent_json(row) for row in rows])


@blueprint.get("/api/agents/shared")
@require_auth
async def list_shared_agents() -> Response:
    limit, offset = _page()
    rows = await store.list_shared_agents(
        services().db, principal().user_id, limit=limit, offset=offset
    )
    return ok([shared_agent_json(row) for row in rows])


@blueprint.get("/api/agents/gateways/list")
@require_auth
async def list_gateways() -> Response:
    rows = await gateways.list_user_gateways(services().db, principal().user_id)
    return ok([gateway_json(row) for row in rows])


@blueprint.get("/api/agents/<id>")
@require_auth
@check_ids("id")
async def get_agent(id: str) -> Response:
    row = await store.get_agent(services().db, id)
    if row is None or (row["owner_id"] != principal().user_id and row["visibility"] != "shared"):
        raise not_found("Agent not found")  # deliberately not 403 (api.md §9.4)
    return ok(agent_json(row))


@blueprint.put("/api/agents/<id>")
@require_auth
@check_ids("id")
async def update_agent(id: str) -> Response:
    body = parse_dict(UPDATE_SCHEMA, await json_body())
    row = await agents.update_agent(
        services(), user_id=principal().user_id, agent_id=id, visibility=body.get("visibility")
    )
    return ok(agent_json(row))


@blueprint.delete("/api/agents/<id>")
@require_auth
@check_ids("id")
async def delete_agent(id: str) -> Response:
    await agents.delete_agent(services(), user_id=principal().user_id, agent_id=id)
    return ok()


add_not_found_routes(blueprint, "/api/agents", authenticated)
