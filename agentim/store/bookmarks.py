"""SQL for bookmarks: a user's saved messages, each with a note (head-gap A8, C3)."""

from __future__ import annotations

from agentim.store.db import Conn, Row
from agentim.store.messages import cleared_since_sql


async def list_bookmarks(conn: Conn, user_id: str, *, before: str | None, limit: int) -> list[Row]:
    """Newest first, created before `before` (exclusive), with the message's room, sender,
    content and time; only messages in rooms the user is a member of, and not cleared."""
    return await conn.fetch(
        "SELECT b.id, b.user_id, b.message_id, b.note, b.created_at, m.room_id, m.sender_name, "
        "m.content, m.created_at AS message_created_at FROM bookmarks b "
        "JOIN messages m ON m.id = b.message_id "
        "JOIN room_members rm ON rm.room_id = m.room_id AND rm.member_id = b.user_id "
        "AND rm.member_type = 'user' "
        "WHERE b.user_id = $1 AND ($2::text IS NULL OR b.created_at < $2) "
        "AND m.created_at >= COALESCE(rm.cleared_at, '') "
        "ORDER BY b.created_at DESC, b.id DESC LIMIT $3",
        user_id, before, limit,
    )  # fmt: skip


async def is_cleared_for(conn: Conn, message_id: str, user_id: str) -> bool:
    """The message is older than the user's clearing point in its room."""
    cleared = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM messages m WHERE m.id = $1 "
        f"AND m.created_at < {cleared_since_sql('m.room_id', '$2')})",
        message_id, user_id,
    )  # fmt: skip
    return bool(cleared)


async def lock_and_count(conn: Conn, user_id: str) -> int:
    """The user's bookmark count, holding the user row so that concurrent adds queue."""
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
    return int(await conn.fetchval("SELECT count(*) FROM bookmarks WHERE user_id = $1", user_id))


async def insert_bookmark(
    conn: Conn, *, bookmark_id: str, user_id: str, message_id: str, note: str, now: str
) -> Row | None:
    """The new row; None when the user already bookmarked the message."""
    return await conn.fetchrow(
        "INSERT INTO bookmarks (id, user_id, message_id, note, created_at) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, message_id) DO NOTHING RETURNING *",
        bookmark_id, user_id, message_id, note, now,
    )  # fmt: skip


async def delete_bookmark(conn: Conn, bookmark_id: str, user_id: str) -> bool:
    status = await conn.execute(
        "DELETE FROM bookmarks WHERE id = $1 AND user_id = $2", bookmark_id, user_id
    )
    return status != "DELETE 0"
