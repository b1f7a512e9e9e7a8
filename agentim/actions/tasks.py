"""Tasks (api.md §8, realtime.md §7.7): create, update, delete, and gateway status updates.

Every change is committed, then `server:task_update {task}` goes to the room. For REST changes
this is our deliberate improvement (the reference only broadcast gateway updates); a delete
sends the task as it was, with `"deleted":true` beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from agentim.actions.serialize import omit_nulls
from agentim.errors import bad_request, forbidden, not_found
from agentim.protocol.events import Target, frame_event
from agentim.protocol.ids import new_id
from agentim.protocol.sanitize import sanitize_content, sanitize_text
from agentim.protocol.timefmt import iso_now
from agentim.services import Services
from agentim.store import tasks as store
from agentim.store.db import Conn, Row
from agentim.store.membership import is_room_admin

log = logging.getLogger("GatewayHandler")

TASK_STATUSES: Final = ("pending", "in_progress", "completed", "failed", "cancelled")
ASSIGNEE_TYPES: Final = ("user", "agent")
# Changing any of these needs creator, assignee or room admin; `status` alone needs membership.
DETAIL_KEYS: Final = ("title", "description", "result", "dueDate", "assigneeId", "assigneeType")
NO_RETURN_TO_WORK: Final = ("completed", "cancelled")  # these may not go back to in_progress


def task_object(row: Row) -> dict[str, Any]:
    """api.md §15.7 plus 631a1ad's `result` and `dueDate`, as REST returns it (nulls kept)."""
    return {
        "id": row["id"], "roomId": row["room_id"], "title": row["title"],
        "description": row["description"], "status": row["status"], "result": row["result"],
        "dueDate": row["due_date"], "assigneeId": row["assignee_id"],
        "assigneeType": row["assignee_type"], "createdById": row["created_by_id"],
        "createdAt": row["created_at"], "updatedAt": row["updated_at"],
    }  # fmt: skip


async def create_task(
    services: Services, *, user_id: str, room_id: str, title: str, description: str,
    due_date: str | None, assignee_id: str | None, assignee_type: str | None,
) -> dict[str, Any]:  # fmt: skip
    """api.md §8.3, after the membership check and validation.

    Returns:
        The new task (status `pending`).

    Raises:
        AgentImError: 400 `Assignee is not a member of this room`.
    """
    if assignee_id:
        assignee_type = assignee_type or "user"
    async with services.db.transaction() as tx:
        if assignee_id and not await store.is_assignable(
            tx, room_id, assignee_id, assignee_type or "user"
        ):
            raise bad_request("Assignee is not a member of this room")
        row = await store.insert_task(
            tx, task_id=new_id(), room_id=room_id, title=sanitize_text(title),
            description=sanitize_content(description), due_date=due_date,
            assignee_id=assignee_id or None,
            assignee_type=assignee_type, created_by_id=user_id, now=iso_now(),
        )  # fmt: skip
    task = task_object(row)
    await _publish(services, task)
    return task


async def update_task(
    services: Services, *, user_id: str, task_id: str, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """api.md §8.4 steps 4 on: permission, assignee pairing, the status rule, then the update.

    Args:
        changes: the validated body; keys present (values may be None) are the ones sent.

    Returns:
        The updated task.

    Raises:
        AgentImError: 404 `Task not found`, 403 for details without the right, 400 for an
            invalid assignee or `Cannot transition from "<old>" to "in_progress"`.
    """
    async with services.db.transaction() as tx:
        row = await store.get_task(tx, task_id, for_update=True)
        if row is None:
            raise not_found("Task not found")
        await _check_may_edit_details(tx, row, user_id, changes)
        columns = await _assignee_columns(tx, row, changes)
        _check_transition(row["status"], changes.get("status"))
        columns.update(_field_columns(changes))
        updated = await store.update_task(tx, task_id, columns, now=iso_now())
    if updated is None:  # unreachable: the row is locked until commit
        raise not_found("Task not found")
    task = task_object(updated)
    await _publish(services, task)
    return task


async def delete_task(services: Services, *, user_id: str, task_id: str) -> None:
    """api.md §8.5 step 3 on: the creator or a room owner/admin removes the task.

    Raises:
        AgentImError: 404 `Task not found`, 403 `Only task creator or room admin can delete`.
    """
    async with services.db.transaction() as tx:
        row = await store.get_task(tx, task_id, for_update=True)
        if row is None:
            raise not_found("Task not found")
        if row["created_by_id"] != user_id and not await is_room_admin(tx, user_id, row["room_id"]):
            raise forbidden("Only task creator or room admin can delete")
        await store.delete_task(tx, task_id)
    await _publish(services, task_object(row), deleted=True)


async def apply_gateway_task_update(
    services: Services, *, task_id: str, status: str, result: str | None
) -> dict[str, Any] | None:
    """realtime.md §7.7 step 4, for the gateway handler once it has checked steps 1-3.

    Sets the status and, when `result` is non-empty, stores it as the task's `result` and, as
    AgentIM does, also as its description (sanitised like every description). Then
    `server:task_update` goes to the room.

    Returns:
        The updated task, or None when the status is invalid or the task is gone (logged).
    """
    if status not in TASK_STATUSES:
        log.warning('Invalid task status "%s" for task %s, ignoring', status, task_id)
        return None
    changes: dict[str, Any] = {"status": status}
    if result:
        changes["result"] = changes["description"] = sanitize_content(result)
    async with services.db.transaction() as tx:
        row = await store.update_task(tx, task_id, changes, now=iso_now())
    if row is None:
        log.warning("Task %s not found, ignoring update", task_id)
        return None
    task = task_object(row)
    await _publish(services, task)
    return task


async def _check_may_edit_details(
    conn: Conn, row: Row, user_id: str, changes: Mapping[str, Any]
) -> None:
    """Any member may change `status` alone; details need creator, assignee or room admin."""
    if not any(key in changes for key in DETAIL_KEYS):
        return
    if user_id in (row["created_by_id"], row["assignee_id"]):
        return
    if not await is_room_admin(conn, user_id, row["room_id"]):
        raise forbidden("Only task creator, assignee, or room admin can modify task details")


async def _assignee_columns(conn: Conn, row: Row, changes: Mapping[str, Any]) -> dict[str, Any]:
    """api.md §8.4 assignee pairing: the request merged over the stored pair, then checked."""
    sent_id, sent_type = "assigneeId" in changes, "assigneeType" in changes
    if not sent_id and not sent_type:
        backfill = row["assignee_id"] and not row["assignee_type"]
        return {"assignee_type": "user"} if backfill else {}
    clears = (sent_type and not sent_id and changes["assigneeType"] is None) or (
        sent_id and not sent_type and changes["assigneeId"] is None
    )
    if clears:
        return {"assignee_id": None, "assignee_type": None}
    new_id_ = (changes["assigneeId"] if sent_id else row["assignee_id"]) or None
    new_type = changes["assigneeType"] if sent_type else row["assignee_type"]
    new_type = new_type or ("user" if new_id_ else None)  # a stored id without type is a user
    if new_type and not new_id_:
        raise bad_request("assigneeId is required when assigneeType is set")
    if new_id_ and not await store.is_assignable(conn, row["room_id"], new_id_, new_type or "user"):
        raise bad_request(
            "Assignee is not a member of this room"
            if sent_id
            else "Current assignee is not valid for the new assigneeType; provide a new assigneeId"
        )
    return {"assignee_id": new_id_, "assignee_type": new_type}


def _check_transition(old: str, new: str | None) -> None:
    if new == "in_progress" and old in NO_RETURN_TO_WORK:
        raise bad_request(f'Cannot transition from "{old}" to "in_progress"')


def _field_columns(changes: Mapping[str, Any]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    if "title" in changes:
        columns["title"] = sanitize_text(changes["title"])
    if "description" in changes:
        columns["description"] = sanitize_content(changes["description"])
    if "status" in changes:
        columns["status"] = changes["status"]
    if "result" in changes:
        result = changes["result"]
        columns["result"] = sanitize_content(result) if result is not None else None
    if "dueDate" in changes:
        columns["due_date"] = changes["dueDate"]
    return columns


async def _publish(services: Services, task: dict[str, Any], *, deleted: bool = False) -> None:
    message: dict[str, Any] = {"type": "server:task_update", "task": omit_nulls(task)}
    if deleted:
        message["deleted"] = True
    await services.events.publish(frame_event(Target.ROOM, task["roomId"], message))
