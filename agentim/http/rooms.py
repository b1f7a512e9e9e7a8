"""/api/rooms (api.md §6): parse → authorize → actions (writes) or store (reads) → envelope.

Every path under /api/rooms needs a token first, then a valid `:id`; unknown paths then get
the plain-text 404, as the reference's router-level middleware does (api.md §2.10).
"""

from __future__ import annotations

from typing import Any, Final

from quart import Blueprint, Response, request

from agentim.actions import rooms as actions
from agentim.actions.serialize import member_json, room_json, room_list_json
from agentim.errors import AgentImError, forbidden, not_found
from agentim.http._request import (
    check_ids,
    client_ip,
    json_body,
    ok,
    principal,
    require_auth,
    services,
)
from agentim.http.not_found import add_not_found_routes, authenticated_with_ids
from agentim.http.validate import Bool, Enum, List, Str, parse_dict
from agentim.settings import parse_js_int
from agentim.store import rooms as store
from agentim.store.membership import is_member

blueprint = Blueprint("rooms", __name__)

NAME_BLANK: Final = "Name cannot be only whitespace"
PREFERENCES: Final = ("all", "mentions", "none")
AGENT_COMMAND_ROLES: Final = ("member", "admin", "owner")  # who may command agents (A22)

CREATE_ROOM: Final = {
    "name": Str(min=1, max=100, blank_message=NAME_BLANK),
    "type": Enum(values=("private", "group"), default="group"),
    "broadcastMode": Bool(default=False),
    "systemPrompt": Str(max=10000, optional=True),
    "routerId": Str(max=100, optional=True),
    "agentCommandRole": Enum(values=AGENT_COMMAND_ROLES, default="member"),
    "memberIds": List(item=Str(max=100), max=100, optional=True),
}
UPDATE_ROOM: Final = {
    "name": Str(min=1, max=100, blank_message=NAME_BLANK, optional=True),
    "broadcastMode": Bool(optional=True),
    "systemPrompt": Str(max=10000, optional=True, nullable=True),
    "routerId": Str(max=100, optional=True, nullable=True),
    "agentCommandRole": Enum(values=AGENT_COMMAND_ROLES, optional=True),
}
ADD_MEMBER: Final = {
    "memberId": Str(min=1, max=100),
    "memberType": Enum(values=("user", "agent")),
    "role": Enum(values=("owner", "admin", "member"), default="member"),
    "roleDescription": Str(max=500, optional=True),
}


@blueprint.get("/api/rooms")
@require_auth
async def list_rooms() -> Response:
    rows = await store.list_user_rooms(services().db, principal().user_id)
    return ok([room_list_json(row) for row in rows])


@blueprint.post("/api/rooms")
@require_auth
async def create_room() -> Response:
    body = parse_dict(CREATE_ROOM, await json_body())
    room = await actions.create_room(
        services(), user_id=principal().user_id, ip=client_ip(), name=body["name"],
        room_type=body["type"], broadcast_mode=body["broadcastMode"],
        system_prompt=body.get("systemPrompt"), router_id=body.get("routerId"),
        member_ids=body.get("memberIds", []), agent_command_role=body["agentCommandRole"],
    )  # fmt: skip
    return ok(room, 201)


@blueprint.get("/api/rooms/<id>")
@require_auth
@check_ids("id")
async def get_room(id: str) -> Response:
    """The room with its first 100 members (named) and `totalMembers`."""
    db = services().db
    room = await store.get_room(db, id)
    if room is None:
        raise not_found("Room not found")
    if not await is_member(db, principal().user_id, id):
        raise forbidden(actions.NOT_A_MEMBER)
    rows = await store.list_members(db, id, limit=store.MEMBERS_INLINE)
    members = [member_json(row) for row in rows]
    total = await store.count_members(db, id)
    return ok({**room_json(room), "members": members, "totalMembers": total})


@blueprint.put("/api/rooms/<id>")
@require_auth
@check_ids("id")
async def update_room(id: str) -> Response:
    changes = parse_dict(UPDATE_ROOM, await json_body())
    room = await actions.update_room(
        services(), user_id=principal().user_id, ip=client_ip(), room_id=id,
        changes=changes,
    )  # fmt: skip
    return ok(room)


@blueprint.delete("/api/rooms/<id>")
@require_auth
@check_ids("id")
async def delete_room(id: str) -> Response:
    await actions.delete_room(services(), user_id=principal().user_id, ip=client_ip(), room_id=id)
    return ok()


@blueprint.get("/api/rooms/<id>/members")
@require_auth
@check_ids("id")
async def list_members(id: str) -> Response:
    """A page of the room's members, named; `?limit` (1..500, 100) and `?offset`."""
    db = services().db
    if not await is_member(db, principal().user_id, id):
        raise forbidden(actions.NOT_A_MEMBER)
    limit, offset = _page_args()
    rows = await store.list_members(db, id, limit=limit, offset=offset)
    total = await store.count_members(db, id)
    page = {"limit": limit, "offset": offset, "total": total}
    return ok([member_json(row) for row in rows], pagination=page)


def _page_args() -> tuple[int, int]:
    """`?limit&offset` read as parseInt would: junk or absent → the default, then clamped."""
    limit = parse_js_int(
        request.args.get("limit"), store.MEMBERS_PAGE_DEFAULT, 1, store.MEMBERS_PAGE_MAX
    )
    offset = parse_js_int(request.args.get("offset"), 0, 0, store.MEMBERS_OFFSET_MAX)
    return limit, offset


@blueprint.post("/api/rooms/<id>/members")
@require_auth
@check_ids("id")
async def add_member(id: str) -> Response:
    body = parse_dict(ADD_MEMBER, await json_body())
    await actions.add_member(
        services(), user_id=principal().user_id, ip=client_ip(), room_id=id,
        member_id=body["memberId"], member_type=body["memberType"], role=body["role"],
        role_description=body.get("roleDescription"),
    )  # fmt: skip
    return ok(status=201)


@blueprint.delete("/api/rooms/<id>/members/<member_id>")
@require_auth
@check_ids("id")  # `:memberId` is deliberately not checked (api.md §2.8)
async def remove_member(id: str, member_id: str) -> Response:
    await actions.remove_member(
        services(), user_id=principal().user_id, ip=client_ip(), room_id=id,
        member_id=member_id,
    )  # fmt: skip
    return ok()


async def _toggle(room_id: str, flag: str) -> Response:
    state = await actions.toggle_flag(
        services(), user_id=principal().user_id, room_id=room_id, flag=flag
    )
    return ok({flag: state})


@blueprint.put("/api/rooms/<id>/pin")
@require_auth
@check_ids("id")
async def pin_room(id: str) -> Response:
    return await _toggle(id, "pinned")


@blueprint.put("/api/rooms/<id>/archive")
@require_auth
@check_ids("id")
async def archive_room(id: str) -> Response:
    return await _toggle(id, "archived")


@blueprint.put("/api/rooms/<id>/clear")
@require_auth
@check_ids("id")
async def clear_history(id: str) -> Response:
    cleared_at = await actions.clear_history(services(), user_id=principal().user_id, room_id=id)
    return ok({"clearedAt": cleared_at})


@blueprint.put("/api/rooms/<id>/notification-pref")
@require_auth
@check_ids("id")
async def set_notification_pref(id: str) -> Response:
    body: Any = await json_body()
    pref = body.get("pref") if isinstance(body, dict) else None
    if not isinstance(pref, str) or pref not in PREFERENCES:
        raise AgentImError(400, "Invalid preference. Must be one of: all, mentions, none")
    await actions.set_notification_pref(
        services(), user_id=principal().user_id, room_id=id, pref=pref
    )
    return ok()


add_not_found_routes(blueprint, "/api/rooms", authenticated_with_ids("id"))
