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

import attrs
from quart import Blueprint, Response, request

from agentim.actions import messages as actions
from agentim.actions.forwarding import forward_message
from agentim.actions.serialize import attachment_json, edit_json, message_json, reactions_json
from agentim.errors import ValidationFailed, bad_request, forbidden, not_found
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
from agentim.http.validate import Enum, Int, List, Str, collect, fields_of, parse_dict
from agentim.protocol.textrules import js_trim, utf16_len
from agentim.protocol.timefmt import parse_js_date, to_iso
from agentim.store import messages as store
from agentim.store.db import Conn, Row
from agentim.store.membership import is_member
from agentim.store.rooms import has_member_row

blueprint = Blueprint("messages", __name__)

HISTORY_QUERY: Final = {"limit": Int(min=1, max=100, default=50)}
BATCH_DELETE: Final = {"messageIds": List(item=Str(min=1, max=100), min=1, max=50)}
MAX_EMOJI_UNITS: Final = 8  # UTF-16 code units (api.md §7.6)
MAX_EDITS_LISTED: Final = 100
FORWARD: Final = {"targetRoomId": Str(min=1, max=100)}
THREAD_LIMIT_DEFAULT: Final = 50
THREAD_LIMIT_MAX: Final = 100
SEARCH_SENDER_MAX: Final = 100  # the hub's `sender` (name) filter, cut to this length
INVALID_DATETIME: Final = "Invalid datetime"
DATES_REVERSED: Final = "validation.dateFromBeforeDateTo"
# zod's `z.string().datetime({ offset: true })`: a real calendar date (leap years checked),
# `T`, hours and minutes, optional seconds and fraction, then `Z` or an offset.
_ZOD_DATE: Final = (
    r"(?:(?:\d\d[2468][048]|\d\d[13579][26]|\d\d0[48]|[02468][048]00|[13579][26]00)-02-29"
    r"|\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8])))"
)
_ZOD_DATETIME: Final = re.compile(
    _ZOD_DATE + r"T(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})",
    re.ASCII,
)
# What the web client's date pickers send (`<input type="date">`): a whole UTC day.
_DAY: Final = re.compile(_ZOD_DATE, re.ASCII)


def _datetime_problem(text: str) -> str | None:
    return None if _ZOD_DATETIME.fullmatch(text) or _DAY.fullmatch(text) else INVALID_DATETIME


SEARCH_QUERY: Final = {
    "q": Str(min=2, max=500),
    "cursor": Str(optional=True),
    "limit": Int(min=1, max=100, default=20),
    "roomId": Str(max=100, optional=True),
    "senderId": Str(max=100, optional=True),
    "senderType": Enum(values=("user", "agent", "system"), optional=True),
    "dateFrom": Str(optional=True, custom=_datetime_problem),
    "dateTo": Str(optional=True, custom=_datetime_problem),
}
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


def _date_arg(name: str) -> str | None:
    """The hub's older `from` / `to` filters: anything `new Date()` reads."""
    text = request.args.get(name)
    if not text:
        return None
    parsed = parse_js_date(text)
    if parsed is None:
        raise bad_request(f'Invalid "{name}" date format')
    return to_iso(parsed)


def _instant(name: str, text: str | None, *, upper: bool = False) -> str | None:
    """A checked `dateFrom` / `dateTo` as a stored-form timestamp; a bare day as the upper bound
    ends at its last millisecond (`dateTo=2026-12-08` includes all of that day)."""
    if not text:
        return None
    parsed = parse_js_date(text)
    if parsed is None:
        raise bad_request(f'Invalid "{name}" date format')
    if upper and _DAY.fullmatch(text):
        parsed = parsed.replace(hour=23, minute=59, second=59, microsecond=999_000)
    return to_iso(parsed)


def _like(text: str) -> str:
    return "%" + _LIKE_SPECIAL.sub(r"\\\1", text) + "%"


@attrs.frozen
class _Search:
    args: dict[str, Any]
    since: str | None  # dateFrom as stored timestamps compare
    until: str | None  # dateTo likewise


def _search_args() -> _Search:
    """The query checked as the reference's searchMessagesSchema does (zod's texts)."""
    raw: dict[str, Any] = {k: v for k in SEARCH_QUERY if (v := request.args.get(k)) is not None}
    if "limit" in raw:
        raw["limit"] = js_number(raw["limit"])
    args, issues = collect(SEARCH_QUERY, raw)
    since = _instant("dateFrom", args.get("dateFrom"))
    until = _instant("dateTo", args.get("dateTo"), upper=True)
    if since is not None and until is not None and since >= until:
        issues.append(("dateFrom", DATES_REVERSED))
    if issues:
        raise ValidationFailed(fields_of(issues))
    return _Search(args, since, until)


def _bound(values: list[str | None], pick: Any) -> str | None:
    present = [v for v in values if v is not None]
    return pick(present) if present else None


@blueprint.get("/api/messages/search")
@require_auth
@rate_limit("sens")
async def search() -> Response:
    """Text search in the caller's rooms. 631a1ad's filters (`senderId`, `senderType`,
    `dateFrom`, `dateTo`) and the hub's older ones (`sender` name, `from`, `to`) combine."""
    db, user_id = services().db, principal().user_id
    checked = _search_args()
    args = checked.args
    room_id = args.get("roomId") or None
    if room_id is not None and not await has_member_row(db, room_id, user_id):
        raise not_found("Room not found")
    sender = js_trim(request.args.get("sender") or "")[:SEARCH_SENDER_MAX]
    filters = store.SearchFilters(
        room_id=room_id, sender_id=args.get("senderId") or None,
        sender_type=args.get("senderType"), sender_pattern=_like(sender) if sender else None,
        since=_bound([checked.since, _date_arg("from")], max),
        until=_bound([checked.until, _date_arg("to")], min),
    )  # fmt: skip
    rows = await store.search_messages(
        db, user_id, pattern=_like(js_trim(args["q"])), filters=filters, limit=args["limit"]
    )
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
        db, roomId, principal().user_id, limit=limit + 1, before=request.args.get("cursor") or None,
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


async def _readable(id: str) -> Row:
    """The message, if the caller may read its room (404 / 403 otherwise)."""
    message = await store.get_message_for_member(services().db, id, principal().user_id)
    if message is None:
        raise not_found("Message not found")
    if not message["is_member"]:
        raise forbidden(actions.NOT_A_MEMBER)
    return message


def _thread_limit() -> int:
    """`?limit`: 50 when absent or empty, at most 100; a bad number is a 400."""
    raw = request.args.get("limit")
    if not raw:
        return THREAD_LIMIT_DEFAULT
    limit = min(js_number(raw), THREAD_LIMIT_MAX)
    return int(parse_dict({"limit": Int(min=1, max=THREAD_LIMIT_MAX)}, {"limit": limit})["limit"])


@blueprint.get("/api/messages/<id>/thread")
@require_auth
@check_ids("id")
async def thread(id: str) -> Response:
    """Replies to a message, oldest first, each with its attachments; `?cursor` is the last
    reply's createdAt seen, and `nextCursor` (beside `data`) is there while more follow."""
    await _readable(id)
    limit = _thread_limit()
    db = services().db
    rows = await store.list_thread(
        db, id, principal().user_id, after=request.args.get("cursor") or None, limit=limit + 1
    )
    page = rows[:limit]
    attachments: dict[str, list[Row]] = defaultdict(list)
    for attachment in await store.list_attachments(db, [row["id"] for row in page]):
        attachments[attachment["message_id"]].append(attachment)
    items = [
        {**message_json(row), "attachments": [attachment_json(a) for a in attachments[row["id"]]]}
        for row in page
    ]
    more = {"nextCursor": page[-1]["created_at"]} if len(rows) > limit else {}
    return ok(items, **more)


@blueprint.get("/api/messages/<id>/replies/count")
@require_auth
@check_ids("id")
async def reply_count(id: str) -> Response:
    await _readable(id)
    return ok({"count": await store.count_replies(services().db, id, principal().user_id)})


@blueprint.post("/api/messages/<id>/forward")
@require_auth
@check_ids("id")
async def forward(id: str) -> Response:
    body = parse_dict(FORWARD, await json_body())
    who = principal()
    message = await forward_message(
        services(), user_id=who.user_id, username=who.username, message_id=id,
        target_room_id=body["targetRoomId"],
    )  # fmt: skip
    return ok(message, 201)


@blueprint.get("/api/messages/<id>/history")
@require_auth
@check_ids("id")
async def edit_history(id: str) -> Response:
    await _readable(id)
    edits = await store.list_edits(services().db, id, limit=MAX_EDITS_LISTED)
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
