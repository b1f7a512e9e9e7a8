"""Agents and gateways API (api.md §9): lists and reads from the store, writes via actions/agents.

Every route returns the enriched agent object of api.md §15.6 (`ownerName` on the shared list).
"""

from __future__ import annotations

from typing import Any, Final

from quart import Blueprint, Response, request

from agentim.actions import agents, gateways as live_gateways
from agentim.actions.serialize import agent_json
from agentim.errors import ValidationFailed, not_found
from agentim.http._request import check_ids, json_body, ok, principal, require_auth, services
from agentim.http.docs import documented
from agentim.http.not_found import add_not_found_routes, authenticated
from agentim.http.users import page_param
from agentim.http.validate import Enum, List, Str, fields_of, parse_dict
from agentim.store import agents as store, gateways
from agentim.store.db import Row

blueprint = Blueprint("agents", __name__)

PAGE_DEFAULT: Final = 100  # api.md §2.12: limit 1..500, default 100
PAGE_MAX: Final = 500
MAX_NAME_CHARS: Final = 100  # 631a1ad MAX_DISPLAY_NAME_LENGTH
UPDATE_SCHEMA: Final = {
    "visibility": Enum(values=store.VISIBILITIES, optional=True),
    "visibilityList": List(item=Str(max=100), max=500, optional=True),
    "name": Str(min=1, max=MAX_NAME_CHARS, blank_message="validation.nameWhitespace",
                optional=True),
}  # fmt: skip
LEGACY_VISIBILITY: Final = {"shared": "all"}  # the old web client's value, still accepted


def shared_agent_json(row: Row) -> dict[str, Any]:
    agent = agent_json(row)
    if row["owner_name"] is not None:
        agent["ownerName"] = row["owner_name"]
    return agent


def gateway_json(row: Row, connected: bool | None = None) -> dict[str, Any]:
    """A gateways row; with `connected` known, `disconnectedAt` tells the live state (A18).

    A connected gateway shows no `disconnectedAt` even when a closing older socket wrote one;
    one without a socket shows one even when the process that held it died without writing it
    (then its `connectedAt`, as AgentIM does).
    """
    disconnected_at = row["disconnected_at"]
    if connected is True:
        disconnected_at = None
    elif connected is False and disconnected_at is None:
        disconnected_at = row["connected_at"]
    return {
        "id": row["id"], "userId": row["user_id"], "name": row["name"],
        "hostname": row["hostname"], "platform": row["platform"], "arch": row["arch"],
        "nodeVersion": row["node_version"], "connectedAt": row["connected_at"],
        "disconnectedAt": disconnected_at, "ephemeral": row["ephemeral"],
        "createdAt": row["created_at"],
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
    """The caller's gateways (ephemeral ones left out), with their live connection state."""
    rows = await gateways.list_user_gateways(services().db, principal().user_id)
    live = await live_gateways.connected_gateways(services(), [row["id"] for row in rows])
    return ok([gateway_json(row, None if live is None else row["id"] in live) for row in rows])


@blueprint.delete("/api/agents/gateways/<gatewayId>")
@require_auth
@check_ids("gatewayId")
async def delete_gateway(gatewayId: str) -> Response:
    """Delete one of the caller's gateways with its agents."""
    await agents.delete_gateway(services(), user_id=principal().user_id, gateway_id=gatewayId)
    return ok()


@blueprint.get("/api/agents/<id>")
@require_auth
@check_ids("id")
async def get_agent(id: str) -> Response:
    row = await store.get_agent(services().db, id)
    user_id = principal().user_id
    if row is None or (row["owner_id"] != user_id and not store.is_agent_visible(row, user_id)):
        raise not_found("Agent not found")  # deliberately not 403 (api.md §9.4)
    return ok(agent_json(row))


def parse_update(body: Any) -> dict[str, Any]:
    """UPDATE_SCHEMA, then the whitelist rule (checked only once every field is valid)."""
    legacy = body.get("visibility") if isinstance(body, dict) else None
    if isinstance(legacy, str) and legacy in LEGACY_VISIBILITY:  # a list is not hashable
        body = {**body, "visibility": LEGACY_VISIBILITY[legacy]}
    changes = parse_dict(UPDATE_SCHEMA, body)
    if changes.get("visibility") == "whitelist" and not changes.get("visibilityList"):
        raise ValidationFailed(fields_of([("visibilityList", "validation.visibilityListRequired")]))
    return changes


@blueprint.put("/api/agents/<id>")
@require_auth
@check_ids("id")
@documented(body=UPDATE_SCHEMA)
async def update_agent(id: str) -> Response:
    """Rename an agent or change who may see it (owner only)."""
    changes = parse_update(await json_body())
    row = await agents.update_agent(
        services(), user_id=principal().user_id, agent_id=id, changes=changes
    )
    return ok(agent_json(row))


@blueprint.delete("/api/agents/<id>")
@require_auth
@check_ids("id")
async def delete_agent(id: str) -> Response:
    await agents.delete_agent(services(), user_id=principal().user_id, agent_id=id)
    return ok()


add_not_found_routes(blueprint, "/api/agents", authenticated)
