"""Tasks API (api.md §8): lists, create, update, delete; writes go through actions/tasks.py.

Check order per route is the spec's: membership before the body is read on create; task,
then membership, then body on update.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

from quart import Blueprint, Response, request

from agentim.actions import tasks
from agentim.errors import forbidden, not_found
from agentim.http._request import check_ids, json_body, ok, principal, require_auth, services
from agentim.http.docs import documented
from agentim.http.not_found import add_not_found_routes, authenticated
from agentim.http.validate import Enum, Str, parse_dict
from agentim.store import tasks as store
from agentim.store.db import Row
from agentim.store.membership import is_member

blueprint = Blueprint("tasks", __name__)

PAGE_DEFAULT: Final = 50  # api.md §2.12: limit 1..100, default 50
PAGE_MAX: Final = 100
NOT_MEMBER: Final = "Not a member of this room"
_PARSE_INT: Final = re.compile(r"\s*([+-]?\d+)")

_TITLE: Final = Str(min=1, max=200, blank_message="Title cannot be only whitespace")
# zod's string().datetime(): UTC with a Z, seconds, any fraction of them; a real calendar date.
_DATETIME: Final = r"^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?Z$"
MAX_RESULT_CHARS: Final = 100_000


def _calendar_date(value: str) -> str | None:
    """The pattern passed; is the date part a real day (no 2026-02-30)?"""
    try:
        date.fromisoformat(value[:10])
    except ValueError:
        return "Invalid datetime"
    return None


def _due_date(*, nullable: bool = False) -> Str:
    return Str(pattern=_DATETIME, pattern_message="Invalid datetime", custom=_calendar_date,
               optional=True, nullable=nullable)  # fmt: skip


CREATE_SCHEMA: Final = {
    "title": _TITLE,
    "description": Str(max=10000, default=""),
    "dueDate": _due_date(),
    "assigneeId": Str(max=100, optional=True),
    "assigneeType": Enum(values=tasks.ASSIGNEE_TYPES, optional=True),
}
UPDATE_SCHEMA: Final = {
    "title": Str(min=1, max=200, blank_message="Title cannot be only whitespace", optional=True),
    "description": Str(max=10000, optional=True),
    "status": Enum(values=tasks.TASK_STATUSES, optional=True),
    "result": Str(max=MAX_RESULT_CHARS, optional=True, nullable=True),
    "dueDate": _due_date(nullable=True),
    "assigneeId": Str(max=100, optional=True, nullable=True),
    "assigneeType": Enum(values=tasks.ASSIGNEE_TYPES, optional=True, nullable=True),
}


def _page_number(raw: str | None, default: int, lo: int, hi: int) -> int:
    """JavaScript parseInt; NaN or 0 → default; then clamped (api.md §2.12, tasks)."""
    match = _PARSE_INT.match(raw or "")
    number = int(match.group(1)) if match else 0
    return max(lo, min(hi, number or default))


def _page() -> tuple[int, int]:
    limit = _page_number(request.args.get("limit"), PAGE_DEFAULT, 1, PAGE_MAX)
    offset = _page_number(request.args.get("offset"), 0, 0, 2**62)
    return limit, offset


async def _require_member(room_id: str) -> None:
    if not await is_member(services().db, principal().user_id, room_id):
        raise forbidden(NOT_MEMBER)


async def _member_task(task_id: str) -> Row:
    """404 `Task not found`, then 403 unless the caller is a member of its room."""
    row = await store.get_task(services().db, task_id)
    if row is None:
        raise not_found("Task not found")
    await _require_member(row["room_id"])
    return row


@blueprint.get("/api/tasks")
@require_auth
async def list_my_tasks() -> Response:
    limit, offset = _page()
    rows = await store.list_member_tasks(
        services().db, principal().user_id, limit=limit, offset=offset
    )
    return ok([tasks.task_object(row) for row in rows])


@blueprint.get("/api/tasks/rooms/<roomId>")
@require_auth
@check_ids("roomId")
async def list_room_tasks(roomId: str) -> Response:
    await _require_member(roomId)
    limit, offset = _page()
    rows = await store.list_room_tasks(services().db, roomId, limit=limit, offset=offset)
    return ok([tasks.task_object(row) for row in rows])


@blueprint.post("/api/tasks/rooms/<roomId>")
@require_auth
@check_ids("roomId")
@documented(body=CREATE_SCHEMA)
async def create_task(roomId: str) -> Response:
    await _require_member(roomId)
    body = parse_dict(CREATE_SCHEMA, await json_body())
    task = await tasks.create_task(
        services(), user_id=principal().user_id, room_id=roomId, title=body["title"],
        description=body["description"], due_date=body.get("dueDate"),
        assignee_id=body.get("assigneeId"),
        assignee_type=body.get("assigneeType"),
    )  # fmt: skip
    return ok(task, status=201)


@blueprint.put("/api/tasks/<id>")
@require_auth
@check_ids("id")
@documented(body=UPDATE_SCHEMA)
async def update_task(id: str) -> Response:
    await _member_task(id)
    changes = parse_dict(UPDATE_SCHEMA, await json_body())
    task = await tasks.update_task(
        services(), user_id=principal().user_id, task_id=id, changes=changes
    )
    return ok(task)


@blueprint.delete("/api/tasks/<id>")
@require_auth
@check_ids("id")
async def delete_task(id: str) -> Response:
    await _member_task(id)
    await tasks.delete_task(services(), user_id=principal().user_id, task_id=id)
    return ok()


add_not_found_routes(blueprint, "/api/tasks", authenticated)
