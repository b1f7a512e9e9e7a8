"""Room membership checks used across sections 6-8 of api.md (isMember, isRoomAdmin)."""

from __future__ import annotations

from agentim.store.db import Conn


async def is_member(conn: Conn, user_id: str, room_id: str) -> bool:
    """The room exists and the user created it or has a `user` member row (creator shortcut)."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM rooms r WHERE r.id = $2 AND (r.created_by_id = $1 OR "
            "EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = r.id AND m.member_id = $1 "
            "AND m.member_type = 'user')))",
            user_id,
            room_id,
        )
    )


async def is_room_admin(conn: Conn, user_id: str, room_id: str) -> bool:
    """The user's member row has role owner or admin (no creator shortcut)."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $2 AND member_id = $1 "
            "AND member_type = 'user' AND role IN ('owner', 'admin'))",
            user_id,
            room_id,
        )
    )


async def room_access(conn: Conn, user_id: str, room_id: str) -> str | None:
    """For `client:join_room` (realtime.md §7.4): `creator`, `member` or `none`; None: no room."""
    row = await conn.fetchrow(
        "SELECT r.created_by_id = $1 AS creator, EXISTS (SELECT 1 FROM room_members m "
        "WHERE m.room_id = r.id AND m.member_id = $1 AND m.member_type = 'user') AS member "
        "FROM rooms r WHERE r.id = $2",
        user_id, room_id,
    )  # fmt: skip
    if row is None:
        return None
    return "creator" if row["creator"] else "member" if row["member"] else "none"


async def has_member_row(conn: Conn, room_id: str, member_id: str) -> bool:
    """Any member row (user or agent) of `member_id` in the room (realtime.md §5.6)."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND member_id = $2)",
        room_id,
        member_id,
    )
    return bool(found)
