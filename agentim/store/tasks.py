"""SQL for tasks (api.md §8, §14.12). Lists are newest first, paged by offset."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from agentim.store.db import Conn, Row
from agentim.store.updates import update_columns

# The columns an update may set; keys of `changes` are checked against this (no SQL from input).
UPDATABLE: Final = (
    "title", "description", "status", "result", "due_date", "assignee_id", "assignee_type",
)  # fmt: skip


async def get_task(conn: Conn, task_id: str, *, for_update: bool = False) -> Row | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM tasks WHERE id = $1{lock}", task_id)


async def list_member_tasks(conn: Conn, user_id: str, *, limit: int, offset: int) -> list[Row]:
    """Tasks of every room where the user has a `user` member row (api.md §8.1)."""
    return await conn.fetch(
        "SELECT t.* FROM tasks t WHERE t.room_id IN (SELECT room_id FROM room_members "
        "WHERE member_id = $1 AND member_type = 'user') "
        "ORDER BY t.created_at DESC, t.id DESC LIMIT $2 OFFSET $3",
        user_id, limit, offset,
    )  # fmt: skip


async def list_room_tasks(conn: Conn, room_id: str, *, limit: int, offset: int) -> list[Row]:
    return await conn.fetch(
        "SELECT * FROM tasks WHERE room_id = $1 ORDER BY created_at DESC, id DESC "
        "LIMIT $2 OFFSET $3",
        room_id, limit, offset,
    )  # fmt: skip


async def insert_task(
    conn: Conn, *, task_id: str, room_id: str, title: str, description: str,
    assignee_id: str | None, assignee_type: str | None, created_by_id: str, now: str,
    due_date: str | None = None,
) -> Row:  # fmt: skip
    row = await conn.fetchrow(
        "INSERT INTO tasks (id, room_id, title, description, status, assignee_id, assignee_type, "
        "created_by_id, created_at, updated_at, due_date) "
        "VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $8, $9) RETURNING *",
        task_id, room_id, title, description, assignee_id, assignee_type, created_by_id, now,
        due_date,
    )  # fmt: skip
    assert row is not None  # INSERT … RETURNING always yields the row
    return row


async def update_task(
    conn: Conn, task_id: str, changes: Mapping[str, Any], *, now: str
) -> Row | None:
    """Set the given columns (names from UPDATABLE) and `updated_at`; the updated row."""
    return await update_columns(conn, "tasks", task_id, changes, updatable=UPDATABLE, now=now)


async def delete_task(conn: Conn, task_id: str) -> Row | None:
    """Hard delete; the row as it was, or None if it was already gone."""
    return await conn.fetchrow("DELETE FROM tasks WHERE id = $1 RETURNING *", task_id)


async def is_assignable(conn: Conn, room_id: str, member_id: str, member_type: str) -> bool:
    """api.md §8.3: a user assignee is a member (creator shortcut counts); an agent needs a row."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND member_id = $2 "
        "AND member_type = $3) OR ($3 = 'user' AND EXISTS (SELECT 1 FROM rooms "
        "WHERE id = $1 AND created_by_id = $2))",
        room_id, member_id, member_type,
    )  # fmt: skip
    return bool(found)
