"""SQL for rooms and room_members (api.md §6, §14.6-14.7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from agentim.store.db import Conn, Row

# GET /api/rooms/:id/members paging (A20): `limit` defaults to 100 within 1..500, `offset` >= 0.
MEMBERS_PAGE_DEFAULT: Final = 100
MEMBERS_PAGE_MAX: Final = 500
MEMBERS_OFFSET_MAX: Final = 2**31 - 1  # past any room; a huge ?offset never overflows OFFSET
MEMBERS_INLINE: Final = 100  # members GET /api/rooms/:id carries inline (A21); the rest by paging
# API field → column, the only columns PUT /api/rooms/:id may change.
UPDATABLE_COLUMNS: Final = {
    "name": "name",
    "broadcastMode": "broadcast_mode",
    "systemPrompt": "system_prompt",
    "routerId": "router_id",
    "agentCommandRole": "agent_command_role",
}


async def get_room(conn: Conn, room_id: str) -> Row | None:
    return await conn.fetchrow("SELECT * FROM rooms WHERE id = $1", room_id)


async def list_user_rooms(conn: Conn, user_id: str) -> list[Row]:
    """Rooms where the user has a `user` member row, with that row's pin and archive state."""
    return await conn.fetch(
        "SELECT r.*, m.pinned_at, m.archived_at FROM room_members m "
        "JOIN rooms r ON r.id = m.room_id WHERE m.member_id = $1 AND m.member_type = 'user'",
        user_id,
    )  # fmt: skip


async def insert_room(
    conn: Conn, *, room_id: str, name: str, room_type: str, broadcast_mode: bool,
    system_prompt: str | None, router_id: str | None, created_by_id: str, now: str,
    agent_command_role: str = "member",
) -> Row:  # fmt: skip
    row = await conn.fetchrow(
        "INSERT INTO rooms (id, name, type, broadcast_mode, system_prompt, router_id, "
        "created_by_id, created_at, updated_at, agent_command_role) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING *",
        room_id, name, room_type, broadcast_mode, system_prompt, router_id, created_by_id, now,
        agent_command_role,
    )  # fmt: skip
    assert row is not None
    return row


async def insert_members(
    conn: Conn, room_id: str, members: Sequence[tuple[str, str, str, str | None]], now: str
) -> None:
    """Insert (member_id, member_type, role, role_description) rows; joining counts as read."""
    await conn.executemany(
        "INSERT INTO room_members (room_id, member_id, member_type, role, role_description, "
        "last_read_at, joined_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        [(room_id, *member, now) for member in members],
    )  # fmt: skip


async def existing_user_ids(conn: Conn, user_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch("SELECT id FROM users WHERE id = ANY($1::text[])", list(user_ids))
    return {row["id"] for row in rows}


async def has_member_row(conn: Conn, room_id: str, user_id: str) -> bool:
    """A `user` member row exists (no creator shortcut): the scope of GET /api/rooms and search."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND member_id = $2 "
        "AND member_type = 'user')",
        room_id, user_id,
    )  # fmt: skip
    return bool(found)


async def user_exists(conn: Conn, user_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id))


async def get_agent_owner(conn: Conn, agent_id: str) -> Row | None:
    """The agent's visibility (and list) and its gateway owner's id (`owner_id`), or None."""
    return await conn.fetchrow(
        "SELECT a.visibility, a.visibility_list, g.user_id AS owner_id FROM agents a "
        "JOIN gateways g ON g.id = a.gateway_id WHERE a.id = $1",
        agent_id,
    )  # fmt: skip


# Members in the order they joined; rows inserted together keep their insertion order.
_MEMBER_ORDER: Final = "ORDER BY m.joined_at, m.ctid"
# A total order that an UPDATE of a member row cannot change (ctid moves on every update), so
# consecutive pages of GET /api/rooms/:id/members neither repeat nor skip a member.
_PAGE_ORDER: Final = "ORDER BY m.joined_at, m.member_id"
# Each member row with `display_name`: the user's display name or the agent's name, NULL when
# the row points at nothing (member_id has no foreign key). One join instead of a query per kind.
_MEMBERS_WITH_NAMES: Final = (
    "SELECT m.*, CASE m.member_type WHEN 'user' THEN u.display_name ELSE a.name END "
    "AS display_name FROM room_members m "
    "LEFT JOIN users u ON m.member_type = 'user' AND u.id = m.member_id "
    "LEFT JOIN agents a ON m.member_type = 'agent' AND a.id = m.member_id "
    "WHERE m.room_id = $1"
)


async def list_members(
    conn: Conn, room_id: str, *, limit: int | None = None, offset: int = 0
) -> list[Row]:
    """Member rows (users and agents) with `display_name`, in join order; a page if `limit`."""
    return await conn.fetch(
        f"{_MEMBERS_WITH_NAMES} {_PAGE_ORDER} LIMIT $2 OFFSET $3", room_id, limit, offset
    )


async def count_members(conn: Conn, room_id: str) -> int:
    """How many member rows (users and agents) the room has."""
    total = await conn.fetchval("SELECT count(*) FROM room_members WHERE room_id = $1", room_id)
    return int(total or 0)


async def update_room(conn: Conn, room_id: str, changes: Mapping[str, Any], now: str) -> Row | None:
    """Set the given API fields (keys of UPDATABLE_COLUMNS) and updated_at; returns the row."""
    columns = [UPDATABLE_COLUMNS[field] for field in changes]
    assignments = "".join(f", {column} = ${i}" for i, column in enumerate(columns, start=3))
    return await conn.fetchrow(
        f"UPDATE rooms SET updated_at = $2{assignments} WHERE id = $1 RETURNING *",
        room_id, now, *changes.values(),
    )  # fmt: skip


async def delete_room(conn: Conn, room_id: str) -> None:
    """Delete the room; the schema cascades to members, messages (and theirs) and tasks."""
    await conn.execute("DELETE FROM rooms WHERE id = $1", room_id)


async def list_room_attachment_urls(conn: Conn, room_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT a.url FROM message_attachments a JOIN messages m ON m.id = a.message_id "
        "WHERE m.room_id = $1",
        room_id,
    )  # fmt: skip
    return [row["url"] for row in rows]


async def list_user_member_ids(conn: Conn, room_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT member_id FROM room_members WHERE room_id = $1 AND member_type = 'user'", room_id
    )
    return [row["member_id"] for row in rows]


async def delete_member(conn: Conn, room_id: str, member_id: str) -> None:
    """Remove every row of that member id (any member type)."""
    await conn.execute(
        "DELETE FROM room_members WHERE room_id = $1 AND member_id = $2", room_id, member_id
    )


async def toggle_member_flag(
    conn: Conn, room_id: str, user_id: str, *, column: str, now: str
) -> bool | None:
    """Flip pinned_at or archived_at between NULL and now; None when there is no member row.

    Returns:
        True when the flag is now set.
    """
    assert column in ("pinned_at", "archived_at")
    row = await conn.fetchrow(
        f"UPDATE room_members SET {column} = CASE WHEN {column} IS NULL THEN $3 ELSE NULL END "
        f"WHERE room_id = $1 AND member_id = $2 AND member_type = 'user' RETURNING {column}",
        room_id, user_id, now,
    )  # fmt: skip
    return None if row is None else row[column] is not None


async def set_cleared_at(conn: Conn, room_id: str, user_id: str, now: str) -> bool:
    """Set the caller's clearing point in the room; False when there is no member row."""
    status = await conn.execute(
        "UPDATE room_members SET cleared_at = $3 WHERE room_id = $1 AND member_id = $2 "
        "AND member_type = 'user'",
        room_id, user_id, now,
    )  # fmt: skip
    return status != "UPDATE 0"


async def set_notification_pref(conn: Conn, room_id: str, user_id: str, pref: str) -> bool:
    """Store the preference on the caller's member row; False when there is none."""
    status = await conn.execute(
        "UPDATE room_members SET notification_pref = $3 WHERE room_id = $1 AND member_id = $2 "
        "AND member_type = 'user'",
        room_id, user_id, pref,
    )  # fmt: skip
    return status != "UPDATE 0"


async def list_context_members(conn: Conn, room_id: str) -> list[Row]:
    """Member rows in join order, with the agent or user record each points at (if any);
    an agent's `owner_cleared_at` is its owner's clearing point in the room (or NULL)."""
    return await conn.fetch(
        "SELECT m.member_id, m.member_type, m.role_description, a.id AS agent_id, "
        "a.name AS agent_name, a.type AS agent_type, a.capabilities, a.status, "
        "u.id AS user_id, u.display_name, om.cleared_at AS owner_cleared_at "
        "FROM room_members m "
        "LEFT JOIN agents a ON m.member_type = 'agent' AND a.id = m.member_id "
        "LEFT JOIN users u ON m.member_type = 'user' AND u.id = m.member_id "
        "LEFT JOIN gateways g ON g.id = a.gateway_id "
        "LEFT JOIN room_members om ON om.room_id = m.room_id AND om.member_id = g.user_id "
        "AND om.member_type = 'user' "
        f"WHERE m.room_id = $1 {_MEMBER_ORDER}",
        room_id,
    )  # fmt: skip
