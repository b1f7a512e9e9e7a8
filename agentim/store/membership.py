"""Room membership checks used across sections 6-8 of api.md (isMember, isRoomAdmin)."""

from __future__ import annotations

from typing import Final

from agentim.store.db import Conn

# SQL fragments on a room aliased `r` and the user as `$2`, for statements that inline a rule so
# it costs no extra round trip (the message insert, the relay checks).
# isMember (api.md §6): the creator shortcut or a `user` member row.
IS_MEMBER_SQL: Final = (
    "(r.created_by_id = $2 OR EXISTS (SELECT 1 FROM room_members rm WHERE rm.room_id = r.id "
    "AND rm.member_id = $2 AND rm.member_type = 'user'))"
)
# The user's role in the room: a member row's role, else `owner` for the creator, else NULL.
ROLE_SQL: Final = (
    "COALESCE((SELECT rm.role FROM room_members rm WHERE rm.room_id = r.id AND rm.member_id = $2 "
    "AND rm.member_type = 'user'), CASE WHEN r.created_by_id = $2 THEN 'owner' END)"
)
# The user may command the room's agents (B8): agentCommandRole `member`, or a role that ranks
# at least as high (owner 2, admin 1, member 0, none -1).
MAY_COMMAND_SQL: Final = (
    f"(r.agent_command_role = 'member' OR (SELECT CASE {ROLE_SQL} WHEN 'owner' THEN 2 "
    "WHEN 'admin' THEN 1 WHEN 'member' THEN 0 ELSE -1 END) >= CASE r.agent_command_role "
    "WHEN 'owner' THEN 2 WHEN 'admin' THEN 1 ELSE 0 END)"
)


async def is_member(conn: Conn, user_id: str, room_id: str) -> bool:
    """The room exists and the user created it or has a `user` member row (creator shortcut)."""
    found = await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM rooms r WHERE r.id = $1 AND {IS_MEMBER_SQL})",
        room_id,
        user_id,
    )
    return bool(found)


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
