"""SQL for Web Push subscriptions (table `push_subscriptions`, head-gap C4).

An endpoint belongs to one user at a time: subscribing it again moves it to the caller.
"""

from __future__ import annotations

from agentim.store.db import Conn, Row


async def upsert_subscription(
    conn: Conn, *, sub_id: str, user_id: str, endpoint: str, p256dh: str, auth: str, now: str
) -> None:
    await conn.execute(
        "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (endpoint) DO UPDATE SET "
        "user_id = EXCLUDED.user_id, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth, "
        "created_at = EXCLUDED.created_at",
        sub_id, user_id, endpoint, p256dh, auth, now,
    )  # fmt: skip


async def delete_user_subscription(conn: Conn, *, endpoint: str, user_id: str) -> int:
    """Only the caller's own row goes; how many rows were deleted (0 or 1)."""
    rows = await conn.fetch(
        "DELETE FROM push_subscriptions WHERE endpoint = $1 AND user_id = $2 RETURNING id",
        endpoint, user_id,
    )  # fmt: skip
    return len(rows)


async def trim_user_subscriptions(conn: Conn, user_id: str, *, keep: int) -> int:
    """Delete all but the user's `keep` newest subscriptions; how many were deleted."""
    rows = await conn.fetch(
        "DELETE FROM push_subscriptions WHERE id IN (SELECT id FROM push_subscriptions "
        "WHERE user_id = $1 ORDER BY created_at DESC, id DESC OFFSET $2) RETURNING id",
        user_id, keep,
    )  # fmt: skip
    return len(rows)


async def delete_subscription(conn: Conn, sub_id: str) -> int:
    """An expired subscription (the push service answered 404 or 410)."""
    rows = await conn.fetch("DELETE FROM push_subscriptions WHERE id = $1 RETURNING id", sub_id)
    return len(rows)


async def room_member_subscriptions(
    conn: Conn, room_id: str, *, except_user: str | None
) -> list[Row]:
    """Subscriptions of the room's user members (id, user_id, endpoint, p256dh, auth), but
    the sender's."""
    return await conn.fetch(
        "SELECT s.id, s.user_id, s.endpoint, s.p256dh, s.auth FROM push_subscriptions s "
        "JOIN room_members m ON m.member_id = s.user_id AND m.member_type = 'user' "
        "WHERE m.room_id = $1 AND s.user_id IS DISTINCT FROM $2 ORDER BY s.user_id, s.id",
        room_id, except_user,
    )  # fmt: skip


async def user_subscriptions(conn: Conn, user_id: str) -> list[Row]:
    return await conn.fetch(
        "SELECT id, user_id, endpoint, p256dh, auth, created_at FROM push_subscriptions "
        "WHERE user_id = $1 ORDER BY created_at, id",
        user_id,
    )
