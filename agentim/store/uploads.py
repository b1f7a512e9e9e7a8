"""SQL for uploads: `message_attachments` rows (api.md §14.9), D10 access, orphan sweeping.

A row with `message_id IS NULL` is an upload not yet sent with a message (an orphan once old).
"""

from __future__ import annotations

from agentim.store.db import Conn, Row


async def insert_attachment(
    conn: Conn, *, attachment_id: str, filename: str, mime_type: str, size: int, url: str,
    uploaded_by: str, now: str,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO message_attachments (id, message_id, filename, mime_type, size, url, "
        "uploaded_by, created_at) VALUES ($1, NULL, $2, $3, $4, $5, $6, $7)",
        attachment_id, filename, mime_type, size, url, uploaded_by, now,
    )  # fmt: skip


async def access_attachment(conn: Conn, attachment_id: str, url: str, user_id: str) -> bool | None:
    """DIFFERENCES D10: may `user_id` read this file?

    Returns:
        None when no attachment row has this id and URL; True for its uploader and for members
        (creator shortcut included) of the room of the message it is attached to; else False.
    """
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT COALESCE(a.uploaded_by = $3 OR r.created_by_id = $3 OR EXISTS (SELECT 1 "
        "FROM room_members rm WHERE rm.room_id = r.id AND rm.member_id = $3 "
        "AND rm.member_type = 'user'), false) "
        "FROM message_attachments a LEFT JOIN messages m ON m.id = a.message_id "
        "LEFT JOIN rooms r ON r.id = m.room_id WHERE a.id = $1 AND a.url = $2",
        attachment_id, url, user_id,
    )  # fmt: skip


async def list_orphans(conn: Conn, *, older_than: str, limit: int) -> list[Row]:
    """Unlinked uploads created before `older_than` (ISO text, compared as text: api.md §0.3)."""
    return await conn.fetch(
        "SELECT id, url FROM message_attachments WHERE message_id IS NULL AND created_at < $1 "
        "ORDER BY created_at LIMIT $2",
        older_than, limit,
    )  # fmt: skip


async def lock_orphan(conn: Conn, attachment_id: str) -> str | None:
    """Lock a still-unlinked upload for deletion; its URL, or None if linked, gone or busy.

    The row lock makes a concurrent link (send_message) wait, so a file is never removed
    under a message that has just claimed it.
    """
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT url FROM message_attachments WHERE id = $1 AND message_id IS NULL "
        "FOR UPDATE SKIP LOCKED",
        attachment_id,
    )


async def delete_attachment(conn: Conn, attachment_id: str) -> None:
    await conn.execute("DELETE FROM message_attachments WHERE id = $1", attachment_id)
