"""/api/users (api.md §5): own profile and password, admin list/create/update/delete.

Admin status is read from the database on every admin call (§2.7); path ids are checked after
authentication and before the admin check (§2.8).
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import attrs
from quart import Blueprint, Response, request

from agentim.actions import users as user_actions
from agentim.errors import not_found
from agentim.http._request import (
    check_ids,
    client_ip,
    ensure_admin,
    json_body,
    ok,
    principal,
    rate_limit,
    require_admin,
    require_auth,
    services,
)
from agentim.http.validate import MISSING, Enum, Int, Issue, Rule, Str, parse_dict
from agentim.protocol.sanitize import sanitize_text
from agentim.protocol.textrules import js_trim, utf16_len
from agentim.store import users
from agentim.store.db import Row

blueprint = Blueprint("users", __name__)

_PASSWORD_CLASSES: Final = (
    (re.compile(r"[a-z]"), "Password must contain a lowercase letter"),
    (re.compile(r"[A-Z]"), "Password must contain an uppercase letter"),
    (re.compile(r"[0-9]"), "Password must contain a digit"),
)
_JS_DECIMAL: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Infinity")
_JS_RADIX: Final = re.compile(r"0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")
SEARCH_MIN_CHARS: Final = 2  # 631a1ad GET /users/search: shorter queries find nothing
SEARCH_LIMIT: Final = 10
MAX_OFFSET: Final = 2**53 - 1  # JavaScript's largest exact integer; PostgreSQL takes bigint


@attrs.frozen(kw_only=True)
class Password(Str):
    """The password policy (api.md §4.5): 8..128 with lower, upper and digit, every issue told."""

    min: int | None = 8
    max: int | None = 128

    def check_value(self, value: Any, path: str, issues: list[Issue]) -> Any:
        clean = super().check_value(value, path, issues)
        if not isinstance(value, str):
            return MISSING
        for pattern, message in _PASSWORD_CLASSES:
            if not pattern.search(value):
                issues.append((path, message))
                clean = MISSING
        return clean


def _starts_with_uploads(value: str) -> str | None:
    return None if value.startswith("/uploads/") else 'Invalid input: must start with "/uploads/"'


DISPLAY_NAME: Final = Str(
    optional=True, min=1, max=50, blank_message="Display name cannot be only whitespace"
)
PROFILE_SCHEMA: Final[dict[str, Rule]] = {
    "displayName": DISPLAY_NAME,
    "avatarUrl": Str(optional=True, max=500, custom=_starts_with_uploads),
}
PASSWORD_SCHEMA: Final[dict[str, Rule]] = {
    "currentPassword": Str(min=1),
    "newPassword": Password(),
}
CREATE_SCHEMA: Final[dict[str, Rule]] = {
    "username": Str(min=3, max=50, pattern=r"^[a-zA-Z0-9_-]+$"),
    "password": Password(),
    "displayName": DISPLAY_NAME,
    "role": Enum(values=("admin", "user"), default="user"),
}
UPDATE_SCHEMA: Final[dict[str, Rule]] = {
    "displayName": DISPLAY_NAME,
    "role": Enum(optional=True, values=("admin", "user")),
    "password": Password(optional=True),
    "maxWsConnections": Int(optional=True, nullable=True, min=1, max=1000),
    "maxGateways": Int(optional=True, nullable=True, min=1, max=1000),
}


# User objects (api.md §15.8) ----------------------------------------------------------------
def login_json(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "username": row["username"],
        "displayName": row["display_name"],
        "avatarUrl": row["avatar_url"],
        "role": row["role"],
    }


def session_user_json(row: Row) -> dict[str, Any]:
    """The user of a login answer: with `totpEnabled`, as the reference's (head-gap A25)."""
    return {**login_json(row), "totpEnabled": row["totp_enabled"]}


def me_json(row: Row) -> dict[str, Any]:
    """GET/PUT /api/users/me; `totpEnabled` is what the web client's settings page reads."""
    return {
        **session_user_json(row),
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def listed_json(row: Row) -> dict[str, Any]:
    return {
        **login_json(row),
        "maxWsConnections": row["max_ws_connections"],
        "maxGateways": row["max_gateways"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def created_json(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "username": row["username"],
        "displayName": row["display_name"],
        "role": row["role"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def updated_json(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "username": row["username"],
        "displayName": row["display_name"],
        "role": row["role"],
        "maxWsConnections": row["max_ws_connections"],
        "maxGateways": row["max_gateways"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


# Query parameters (api.md §2.12) -------------------------------------------------------------
def js_number(raw: str | None) -> float | None:
    """JavaScript `Number(raw)`; None stands for NaN (an absent parameter is NaN too)."""
    if raw is None:
        return None
    text = js_trim(raw)
    if not text:
        return 0.0
    if _JS_RADIX.fullmatch(text):
        return float(int(text, 0))
    if _JS_DECIMAL.fullmatch(text):
        return float(text.replace("Infinity", "inf"))
    return None


def search_json(row: Row) -> dict[str, Any]:
    return {"id": row["id"], "username": row["username"], "displayName": row["display_name"],
            "avatarUrl": row["avatar_url"]}  # fmt: skip


def page_param(raw: str | None, *, default: int, lo: int, hi: int) -> int:
    """0 or NaN → default, then clamp; fractions are floored instead of failing in SQL."""
    number = js_number(raw)
    if number is None or number == 0:
        return default
    return int(max(lo, min(hi, math.floor(number) if math.isfinite(number) else number)))


# Routes ------------------------------------------------------------------------------------
@blueprint.get("/api/users/me")
@require_auth
async def get_me() -> Response:
    row = await users.get_user(services().db, principal().user_id)
    if row is None:
        raise not_found("User not found")
    return ok(me_json(row))


@blueprint.put("/api/users/me")
@require_auth
async def update_me() -> Response:
    fields = parse_dict(PROFILE_SCHEMA, await json_body())
    changes: dict[str, Any] = {}
    if "displayName" in fields:
        changes["display_name"] = sanitize_text(fields["displayName"])
    if "avatarUrl" in fields:
        changes["avatar_url"] = fields["avatarUrl"]
    row = await user_actions.update_profile(services(), principal().user_id, changes)
    return ok(me_json(row))


@blueprint.put("/api/users/me/password")
@require_auth
@rate_limit("sens")
async def change_password() -> Response:
    fields = parse_dict(PASSWORD_SCHEMA, await json_body())
    await user_actions.change_password(
        services(),
        principal().user_id,
        current=fields["currentPassword"],
        new=fields["newPassword"],
        ip=client_ip(),
    )
    return ok()


@blueprint.get("/api/users/search")
@require_auth
async def search() -> Response:
    """Other users matching `q` (at least 2 characters; 10 at most), e.g. to share an agent."""
    text = js_trim(request.args.get("q", ""))
    if utf16_len(text) < SEARCH_MIN_CHARS:
        return ok([])
    rows = await users.search_users(services().db, principal().user_id, text, limit=SEARCH_LIMIT)
    return ok([search_json(row) for row in rows])


@blueprint.get("/api/users")
@require_admin
async def list_all() -> Response:
    limit = page_param(request.args.get("limit"), default=100, lo=1, hi=500)
    offset = page_param(request.args.get("offset"), default=0, lo=0, hi=MAX_OFFSET)
    db = services().db
    rows = await users.list_users(db, limit=limit, offset=offset)
    return ok([listed_json(row) for row in rows], total=await users.count_users(db))


@blueprint.post("/api/users")
@require_admin
async def create() -> Response:
    fields = parse_dict(CREATE_SCHEMA, await json_body())
    display_name = fields.get("displayName")
    row = await user_actions.create_user(
        services(),
        admin_id=principal().user_id,
        username=fields["username"],
        password=fields["password"],
        role=fields["role"],
        ip=client_ip(),
        display_name=fields["username"] if display_name is None else sanitize_text(display_name),
    )
    return ok(created_json(row))


@blueprint.put("/api/users/<id>")
@require_auth
@check_ids("id")
async def update(id: str) -> Response:
    await ensure_admin()
    fields = parse_dict(UPDATE_SCHEMA, await json_body())
    columns = {
        "displayName": "display_name",
        "role": "role",
        "maxWsConnections": "max_ws_connections",
        "maxGateways": "max_gateways",
    }
    changes = {column: fields[key] for key, column in columns.items() if key in fields}
    if "display_name" in changes:
        changes["display_name"] = sanitize_text(changes["display_name"])
    row = await user_actions.admin_update_user(
        services(),
        admin_id=principal().user_id,
        target_id=id,
        changes=changes,
        password=fields.get("password"),
        ip=client_ip(),
    )
    return ok(updated_json(row))


@blueprint.delete("/api/users/<id>")
@require_auth
@check_ids("id")
async def delete(id: str) -> Response:
    await ensure_admin()
    await user_actions.delete_user(
        services(), admin_id=principal().user_id, target_id=id, ip=client_ip()
    )
    return ok()
