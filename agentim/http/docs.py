"""GET /api/docs/openapi.json: OpenAPI 3.0.3 generated from the served route table.

Paths and methods come from the app's url_map; request bodies from the validation schemas that
views declare with `@documented(body=SCHEMA)`, so the document cannot drift from the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from quart import Blueprint, Quart, Response, current_app

from agentim import __version__
from agentim.http._request import json_response
from agentim.http.validate import Rule

blueprint = Blueprint("docs", __name__)

F = TypeVar("F", bound=Callable[..., Any])
PUBLIC: Final = {
    "/health",
    "/auth/login",
    "/auth/refresh",
    "/auth/oauth/providers",
    "/auth/verify-totp",  # login step two: the challenge token in the body is its credential
    "/auth/oauth/{name}",
    "/auth/oauth/{name}/callback",
    "/docs/openapi.json",
}
TAGS: Final = {
    "health": "System", "metrics": "System", "docs": "System", "auth": "Auth", "users": "Users",
    "rooms": "Rooms", "messages": "Messages", "agents": "Agents", "tasks": "Tasks",
    "uploads": "Upload", "files": "Upload", "routers": "Routers",
    "bookmarks": "Bookmarks",
    "push": "Push",
    "totp": "Auth",
    "oauth": "Auth",
}  # fmt: skip
DESCRIPTION: Final = (
    "Unified IM-style platform for managing and orchestrating multiple AI coding agents."
)
_PARAM: Final = re.compile(r"<(?:[a-z]+:)?([A-Za-z_]+)>")


def documented(*, body: Mapping[str, Rule] | None = None, summary: str = "") -> Callable[[F], F]:
    """Attach the request body schema (and a summary) to a view for the generated document."""

    def decorate(fn: F) -> F:
        fn.openapi_body = body  # type: ignore[attr-defined]
        fn.openapi_summary = summary  # type: ignore[attr-defined]
        return fn

    return decorate


def _body_schema(schema: Mapping[str, Rule]) -> dict[str, Any]:
    properties = {name: rule.openapi() or {} for name, rule in schema.items()}
    required = [n for n, r in schema.items() if not r.optional and r.default is Rule().default]
    spec: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        spec["required"] = required
    return spec


def _operation(path: str, method: str, endpoint: str, view: Any) -> dict[str, Any]:
    tag = TAGS.get(endpoint.split(".")[0], "Other")
    operation: dict[str, Any] = {
        "tags": [tag],
        "operationId": f"{method.lower()}_{endpoint.replace('.', '_')}",
        "summary": getattr(view, "openapi_summary", "") or (view.__doc__ or "").split("\n")[0],
        "responses": {"200": {"description": "Success"}, "default": {"description": "Error"}},
    }
    params = _PARAM.findall(path)
    if params:
        operation["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    body = getattr(view, "openapi_body", None)
    if body:
        content = {"application/json": {"schema": _body_schema(body)}}
        operation["requestBody"] = {"required": True, "content": content}
    if _openapi_path(path) in PUBLIC:
        operation["security"] = []
    return operation


def _openapi_path(rule: str) -> str:
    """`/api/rooms/<id>` → `/rooms/{id}` (the document's server URL is /api, as the reference's)."""
    return _PARAM.sub(r"{\1}", rule.removeprefix("/api"))


def build_document(app: Quart) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or "<path:" in rule.rule or rule.rule.endswith("/"):
            continue  # catch-alls only exist to answer the plain 404 after their limiter
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            entry = paths.setdefault(_openapi_path(rule.rule), {})
            entry[method.lower()] = _operation(rule.rule, method, rule.endpoint, view)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "AgentIM API",
            "version": __version__,
            "description": DESCRIPTION,
        },
        "servers": [{"url": "/api"}],
        "components": {
            "securitySchemes": {
                "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        },
        "security": [{"BearerAuth": []}],
        "paths": dict(sorted(paths.items())),
    }


@blueprint.get("/api/docs/openapi.json")
async def openapi() -> Response:
    return json_response(build_document(current_app))
