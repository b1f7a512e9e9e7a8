"""/api/messages (api.md §7): history, recent, search, edit history (reads); writes via actions.

Messages are created only over WebSocket (actions.messages.send_message). Every path under
/api/messages needs a token first, then valid ids; unknown paths get the plain-text 404.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

from quart import Blueprint, Response, request

from agentim.actions import messages as actions
from agentim.actions.serialize import edit_json, message_json, reactions_json
from agentim.errors import bad_request, forbidden, not_found
from agentim.http._request import (
    check_ids,
    client_ip,
    json_body,
    ok,
    principal,
    rate_limit,
    require_auth,
    services,
)
from agentim.http.not_found import add_not_found_routes, authenticated_with_ids
from agentim.http.validate import Int, List, Str, parse_dict
from agentim.protocol.textrules import js_trim, utf16_len
from agentim.protocol.timefmt import parse_js_date, to_iso
from agentim.settings import parse_js_int
from agentim.store import messages as store
from agentim.store.db import Conn, Row
from agentim.store.membership import is_member
from agentim.store.rooms import has_member_row

blueprint = Blueprint("messages", __name__)

HISTORY_QUERY: Final = {"limit": Int(min=1, max=100, default=50)}
BATCH_DELETE: Final = {"messageIds": List(item=Str(min=1, max=100), min=1, max=50)}
MAX_EMOJI_UNITS: Final = 8  # UTF-16 code units (api.md §7.6)
MAX_EDITS_LISTED: Final = 100
SEARCH_QUERY_MIN: Final = 2
SEARCH_QUERY_MAX: Final = 200
SEARCH_SENDER_MAX: Final = 100
SEARCH_LIMIT_DEFAULT: Final = 20
SEARCH_LIMIT_MAX: Final = 50
_LIKE_SPECIAL: Final = re.compile(r"([\\%_])")
_JS_DECIMAL: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_JS_RADIX: Final = {"0x": 16, "0X": 16, "0o": 8, "0O": 8, "0b": 2, "0B": 2}


def js_number(text: str) -> float:
    """JavaScript `Number(text)` for a query string (what zod's coerce does)."""
    s = js_trim(text)
    if not s:
        return 0.0
    if _JS_DECIMAL.fullmatch(s):
        return float(s)
    if s in ("Infinity", "+Infinity", "-Infinity"):
        return -math.inf if s.startswith("-") else math.inf
    radix = _JS_RADIX.get(s[:2])
    if radix is not None:
        try:
            return float(int(s[2:], radix)) if s[2:].isalnum() else math.nan
        except ValueError:
            return math.nan
    return math.nan


async def _with_extras(conn: Conn, rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Message objects with their attachments and reactions (list and search results)."""
    ids = [row["id"] for row in rows]
    attachments: dict[str, list[Row]] = defaultdict(list)
    for attachment in await store.list_attachments(conn, ids):
        attachments[attachment["message_id"]].append(attachment)
    reactions: dict[str, list[Row]] = defaultdict(list)
    for reaction in await store.list_reactions(conn, ids):
        reactions[reaction["message_id"]].append(reaction)
    return [
        message_json(
            row,
            attachments=attachments[row["id"]],
            reactions=reactions_json(reactions[row["id"]]),
        )
        for row in rows
    ]


@blueprint.get("/api/messages/recent")
@require_auth
async def recent() -> Response:
    rows = await store.list_recent(services().db, principal().user_id)
    return ok({
        row["room_id"]: {"content": row["content"], "senderName": row["sender_name"],
                         "createdAt": row["created_at"], "unread": row["unread"]}
        for row in rows
    })  # fmt: skip


@blueprint.post("/api/messages/mark-all-read")
@require_auth
async def mark_all_read() -> Response:
    who = principal()
    await actions.mark_all_read(services(), user_id=who.user_id, username=who.username)
    return ok()


@blueprint.post("/api/messages/rooms/<roomId>/read")
@require_auth
@check_ids("roomId")
async def mark_room_read(roomId: str) -> Response:
    who = principal()
    await actions.mark_room_read(
        services(), user_id=who.user_id, username=who.username, room_id=roomId
    )
    return ok()


def _search_text(name: str, text: str, *, lo: int, hi: int) -> str:
    if utf16_len(text) < lo:
        raise bad_request(f"{name} must be at least {lo} characters")
    if utf16_len(text) > hi:
        raise bad_request(f"{name} must be at most {hi} characters")
    return text


def _date_arg(name: str) -> str | None:
    text = request.args.get(name)
    if not text:
        return None
    parsed = parse_js_date(text)
    if parsed is None:
        raise bad_request(f'Invalid "{name}" date format')
    return to_iso(parsed)


def _like(text: str) -> str:
    return "%" + _LIKE_SPECIAL.sub(r"\\\1", text) + "%"


def _search_limit() -> int:
    limit = parse_js_int(request.args.get("limit"), 0, -(2**31), 2**31)
    return SEARCH_LIMIT_DEFAULT if limit < 1 else min(limit, SEARCH_LIMIT_MAX)


@blueprint.get("/api/messages/search")
@require_auth
@rate_limit("sens")
async def search() -> Response:
    db, user_id = services().db, principal().user_id
    query = js_trim(request.args.get("q") or "")
    query = _search_text("Query", query, lo=SEARCH_QUERY_MIN, hi=SEARCH_QUERY_MAX)
    room_id = request.args.get("roomId") or None
    if room_id is not None and not await has_member_row(db, room_id, user_id):
        raise not_found("Room not found")
    since, until = _date_arg("from"), _date_arg("to")
    sender = js_trim(request.args.get("sender") or "")[:SEARCH_SENDER_MAX]
    rows = await store.search_messages(
        db, user_id, pattern=_like(query), room_id=room_id,
        sender_pattern=_like(sender) if sender else None, since=since, until=until,
        limit=_search_limit(),
    )  # fmt: skip
    return ok(await _with_extras(db, rows))


@blueprint.get("/api/messages/rooms/<roomId>")
@require_auth
@check_ids("roomId")
async def history(roomId: str) -> Response:
    db = services().db
    if not await is_member(db, principal().user_id, roomId):
        raise forbidden(actions.NOT_A_MEMBER)
    raw = request.args.get("limit")
    limit = parse_dict(HISTORY_QUERY, {} if raw is None else {"limit": js_number(raw)})["limit"]
    rows = await store.list_room_messages(
        db, roomId, limit=limit + 1, before=request.args.get("cursor") or None,
        after=request.args.get("after") or None,
    )  # fmt: skip
    items = await _with_extras(db, rows[:limit])
    page: dict[str, Any] = {"items": items}
    if len(rows) > limit:
        page["nextCursor"] = items[-1]["createdAt"]
    page["hasMore"] = len(rows) > limit
    return ok(page)


@blueprint.post("/api/messages/<id>/reactions")
@require_auth
@check_ids("id")
async def toggle_reaction(id: str) -> Response:
    body: Any = await json_body()
    emoji = body.get("emoji") if isinstance(body, dict) else None
    if not isinstance(emoji, str) or not emoji or utf16_len(emoji) > MAX_EMOJI_UNITS:
        raise bad_request("Invalid emoji")
    reactions = await actions.toggle_reaction(
        services(), user_id=principal().user_id, message_id=id, emoji=emoji
    )
    return ok(reactions)


@blueprint.get("/api/messages/<id>/history")
@require_auth
@check_ids("id")
async def edit_history(id: str) -> Response:
    db = services().db
    message = await store.get_message_for_member(db, id, principal().user_id)
    if message is None:
        raise not_found("Message not found")
    if not message["is_member"]:
        raise forbidden(actions.NOT_A_MEMBER)
    edits = await store.list_edits(db, id, limit=MAX_EDITS_LISTED)
    return ok([edit_json(row) for row in edits])


@blueprint.put("/api/messages/<id>")
@require_auth
@check_ids("id")
async def edit_message(id: str) -> Response:
    schema = {"content": Str(min=1, max=services().settings.max_message_length)}
    body = parse_dict(schema, await json_body())
    message = await actions.edit_message(
        services(), user_id=principal().user_id, message_id=id, content=body["content"]
    )
    return ok(message)


@blueprint.delete("/api/messages/<id>")
@require_auth
@check_ids("id")
async def delete_message(id: str) -> Response:
    await actions.delete_message(
        services(), user_id=principal().user_id, message_id=id, ip=client_ip()
    )
    return ok()


@blueprint.post("/api/messages/batch-delete")
@require_auth
async def batch_delete() -> Response:
    body = parse_dict(BATCH_DELETE, await json_body())
    deleted = await actions.batch_delete(
        services(), user_id=principal().user_id, message_ids=body["messageIds"], ip=client_ip()
    )
    return ok({"deleted": deleted})


async def _message_path_guard(rest: str) -> None:
    """`/api/messages/:id/*` and `/api/messages/rooms/:roomId/*` check their ids (§2.8)."""
    in_rooms = rest.split("/", 1)[0] == "rooms"
    await authenticated_with_ids(*(("", "roomId") if in_rooms else ("id",)))(rest)


add_not_found_routes(blueprint, "/api/messages", _message_path_guard)
