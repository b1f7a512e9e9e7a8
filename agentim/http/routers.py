"""/api/routers (api.md §10): AI-router configs, their visibility rule and the test call.

Writes go through actions/routers.py; reads apply §10.2 here, with admins bypassing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs
from quart import Blueprint, Response

from agentim.actions import routers as actions
from agentim.auth.crypto import open_secret
from agentim.errors import AgentImError, ValidationFailed, not_found
from agentim.http._request import (
    check_ids,
    client_ip,
    json_body,
    json_response,
    ok,
    principal,
    rate_limit,
    require_auth,
    services,
)
from agentim.http.docs import documented
from agentim.http.not_found import add_not_found_routes, authenticated_with_ids
from agentim.http.validate import MISSING, Enum, Int, Issue, List, Rule, Str, parse_dict
from agentim.protocol.textrules import utf16_len
from agentim.routing.ai_selector import new_llm_client, probe_llm
from agentim.routing.ssrf import is_valid_url
from agentim.store import ai_routers as store

blueprint = Blueprint("routers", __name__)

BASE_URL_MAX: Final = 500


@attrs.frozen(kw_only=True)
class HttpUrl(Rule):
    """zod's `string().url().max(500).refine(startsWith http(s)://)`: every failing check."""

    max: int = BASE_URL_MAX

    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        if not isinstance(value, str):
            return Str().check_value(value, path, issues)
        before = len(issues)
        if not is_valid_url(value):
            issues.append((path, "Invalid url"))
        if utf16_len(value) > self.max:
            issues.append((path, f"String must contain at most {self.max} character(s)"))
        if not value.startswith(("http://", "https://")):
            issues.append((path, "Must be an HTTP(S) URL"))
        return value if len(issues) == before else MISSING

    def openapi(self) -> dict[str, Any]:
        return {"type": "string", "format": "uri", "maxLength": self.max}


NAME_BLANK: Final = "Name cannot be only whitespace"
KEY_BLANK: Final = "API key cannot be only whitespace"
MODEL_BLANK: Final = "Model cannot be only whitespace"
SCOPES: Final = ("global", "personal")
VISIBILITIES: Final = ("all", "whitelist", "blacklist")

CREATE_ROUTER: Final = {
    "name": Str(min=1, max=100, blank_message=NAME_BLANK),
    "description": Str(max=1000, optional=True),
    "scope": Enum(values=SCOPES, default="personal"),
    "llmBaseUrl": HttpUrl(),
    "llmApiKey": Str(min=1, max=500, blank_message=KEY_BLANK),
    "llmModel": Str(min=1, max=200, blank_message=MODEL_BLANK),
    "maxChainDepth": Int(min=1, max=100, default=5),
    "rateLimitWindow": Int(min=1, max=3600, default=60),
    "rateLimitMax": Int(min=1, max=1000, default=20),
    "visibility": Enum(values=VISIBILITIES, default="all"),
    "visibilityList": List(item=Str(max=100), max=500, default=[]),
}
# The create fields without `scope` (it never changes), all optional, no defaults.
UPDATE_ROUTER: Final = {
    "name": Str(min=1, max=100, blank_message=NAME_BLANK, optional=True),
    "description": Str(max=1000, optional=True, nullable=True),
    "llmBaseUrl": HttpUrl(optional=True),
    "llmApiKey": Str(min=1, max=500, blank_message=KEY_BLANK, optional=True),
    "llmModel": Str(min=1, max=200, blank_message=MODEL_BLANK, optional=True),
    "maxChainDepth": Int(min=1, max=100, optional=True),
    "rateLimitWindow": Int(min=1, max=3600, optional=True),
    "rateLimitMax": Int(min=1, max=1000, optional=True),
    "visibility": Enum(values=VISIBILITIES, optional=True),
    "visibilityList": List(item=Str(max=100), max=500, optional=True),
}


LIST_REQUIRED: Final = "validation.visibilityListRequired"  # the reference's message key


def _require_list(fields: Mapping[str, Any]) -> None:
    """A whitelist or blacklist router names its users (head-gap A31): an empty
    `visibilityList` given with such a `visibility` is refused."""
    if (
        fields.get("visibility") in ("whitelist", "blacklist")
        and fields.get("visibilityList", []) == []
    ):
        raise ValidationFailed([{"field": "visibilityList", "message": LIST_REQUIRED}])


def _json(row: Mapping[str, Any]) -> dict[str, Any]:
    return actions.router_json(row, services().settings.encryption_key)


async def _visible_router(router_id: str) -> Mapping[str, Any]:
    """The router if the caller may see it (§10.2, admins bypass); else 404."""
    db, user_id = services().db, principal().user_id
    row = await store.get_router(db, router_id)
    if row is None:
        raise not_found("Router not found")
    if not store.is_router_visible(row, user_id) and not await actions.is_admin(db, user_id):
        raise not_found("Router not found")
    return row


@blueprint.get("/api/routers")
@require_auth
async def list_routers() -> Response:
    db, user_id = services().db, principal().user_id
    if await actions.is_admin(db, user_id):
        return ok([_json(row) for row in await store.list_routers(db)])
    own = await store.list_scope_routers(db, "personal", created_by_id=user_id)
    shared = await store.list_scope_routers(db, "global")
    visible = [row for row in shared if store.is_router_visible(row, user_id)]
    return ok([_json(row) for row in [*own, *visible]])


@blueprint.post("/api/routers")
@require_auth
@documented(body=CREATE_ROUTER)
async def create_router() -> Response:
    fields = parse_dict(CREATE_ROUTER, await json_body())
    _require_list(fields)
    router = await actions.create_router(
        services(), user_id=principal().user_id, ip=client_ip(), fields=fields
    )
    return ok(router, 201)


@blueprint.get("/api/routers/<id>")
@require_auth
@check_ids("id")
async def get_router(id: str) -> Response:
    return ok(_json(await _visible_router(id)))


@blueprint.put("/api/routers/<id>")
@require_auth
@check_ids("id")
@documented(body=UPDATE_ROUTER)
async def update_router(id: str) -> Response:
    changes = parse_dict(UPDATE_ROUTER, await json_body())
    if "visibilityList" in changes:  # the update rule: only a list given empty is refused
        _require_list(changes)
    router = await actions.update_router(
        services(), user_id=principal().user_id, ip=client_ip(), router_id=id, changes=changes
    )
    return ok(router)


@blueprint.delete("/api/routers/<id>")
@require_auth
@check_ids("id")
async def delete_router(id: str) -> Response:
    await actions.delete_router(
        services(), user_id=principal().user_id, ip=client_ip(), router_id=id
    )
    return ok()


@blueprint.post("/api/routers/<id>/test")
@require_auth
@check_ids("id")
@rate_limit("router-test")
async def test_router(id: str) -> Response:
    """Always 200 once the router is found and its key opens (api.md §10.3)."""
    row = await _visible_router(id)
    settings = services().settings
    api_key = open_secret(row["llm_api_key"], settings.encryption_key)
    if api_key is None:
        raise AgentImError(500, "Router configuration error")
    async with new_llm_client() as http:
        problem = await probe_llm(
            http, base_url=row["llm_base_url"], api_key=api_key, model=row["llm_model"],
            allow_private=settings.router_allow_private_networks,
        )  # fmt: skip
    if problem is not None:
        return json_response({"ok": False, "error": problem})
    return ok({"success": True})


add_not_found_routes(blueprint, "/api/routers", authenticated_with_ids("id"))
