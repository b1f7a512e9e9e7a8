"""SQL for agents, their room memberships, agent replies and deleted-agent tombstones.

api.md §9, §14.4; realtime.md §4-§5; D13 (`deleted_agents` outlives restarts and processes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from agentim.store.db import Conn, Row

# The agent row plus its gateway's owner and device info (api.md §9 enriched agent).
_ENRICHED: Final = (
    "SELECT a.*, g.id AS gw_id, g.user_id AS owner_id, g.hostname, g.platform, g.arch, "
    "g.node_version FROM agents a LEFT JOIN gateways g ON g.id = a.gateway_id"
)
# What `server:agent_status` carries (protocol.gateway.agent_summary).
_SUMMARY: Final = "id, name, type, status, slash_commands, mcp_servers, model"
VISIBILITIES: Final = ("private", "all", "whitelist")


async def get_agent(conn: Conn, agent_id: str) -> Row | None:
    """The enriched agent row (with `owner_id`), or None."""
    return await conn.fetchrow(f"{_ENRICHED} WHERE a.id = $1", agent_id)


async def list_user_agents(conn: Conn, user_id: str, *, limit: int, offset: int) -> list[Row]:
    """Agents on any of the user's gateways (GET /api/agents)."""
    return await conn.fetch(
        f"{_ENRICHED} WHERE g.user_id = $1 ORDER BY a.created_at, a.id LIMIT $2 OFFSET $3",
        user_id, limit, offset,
    )  # fmt: skip


def is_agent_visible(agent: Mapping[str, Any], user_id: str) -> bool:
    """Another user's agent is visible to `user_id` (owners see their own; callers check that).

    `all` shows it to everyone, `whitelist` to the users listed in `visibility_list`.
    """
    visibility = agent["visibility"]
    if visibility == "all":
        return True
    if visibility != "whitelist":
        return False
    listed = json_list(agent["visibility_list"])
    return user_id in listed


def json_list(value: Any) -> list[Any]:
    """A jsonb array column (text from asyncpg) as a list; anything else → []."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return value if isinstance(value, list) else []


# The same rule in SQL: jsonb `?` is "has this string as an array element".
_VISIBLE_SQL: Final = (
    "(a.visibility = 'all' OR (a.visibility = 'whitelist' AND a.visibility_list ? $1))"
)


async def list_shared_agents(conn: Conn, user_id: str, *, limit: int, offset: int) -> list[Row]:
    """Other users' agents visible to this user, with the owner's display name (`owner_name`).

    The whitelist is applied before paging, so a page is never short of visible agents.
    """
    return await conn.fetch(
        "SELECT e.*, u.display_name AS owner_name FROM "
        f"({_ENRICHED} WHERE {_VISIBLE_SQL} AND g.user_id <> $1) e "
        "LEFT JOIN users u ON u.id = e.owner_id ORDER BY e.created_at, e.id LIMIT $2 OFFSET $3",
        user_id, limit, offset,
    )  # fmt: skip


async def update_agent(conn: Conn, agent_id: str, changes: Mapping[str, Any], now: str) -> None:
    """Set the given columns (`name`, `visibility`, `visibility_list`) and `updated_at`."""
    names = [name for name in ("name", "visibility", "visibility_list") if name in changes]
    values = [
        json.dumps(changes[name]) if name == "visibility_list" else changes[name] for name in names
    ]
    sets = "".join(f", {name} = ${index}" for index, name in enumerate(names, start=3))
    await conn.execute(
        f"UPDATE agents SET updated_at = $2{sets} WHERE id = $1", agent_id, now, *values
    )


async def delete_agent(tx: Conn, agent_id: str, *, user_id: str, now: str) -> list[str]:
    """Delete the agent and its room memberships; leave a tombstone (D13).

    Returns:
        The ids of the rooms it was a member of.
    """
    rows = await tx.fetch(
        "DELETE FROM room_members WHERE member_id = $1 AND member_type = 'agent' "
        "RETURNING room_id",
        agent_id,
    )  # fmt: skip
    await tx.execute("DELETE FROM agents WHERE id = $1", agent_id)
    await tx.execute(
        "INSERT INTO deleted_agents (agent_id, user_id, deleted_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (agent_id) DO UPDATE SET user_id = $2, deleted_at = $3",
        agent_id, user_id, now,
    )  # fmt: skip
    return list(dict.fromkeys(row["room_id"] for row in rows))


async def is_deleted(conn: Conn, agent_id: str) -> bool:
    """A tombstone exists for this agent id."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM deleted_agents WHERE agent_id = $1)", agent_id
    )
    return bool(found)


async def get_owner(conn: Conn, agent_id: str) -> str | None:
    """The user id owning the agent's gateway; None when there is no such agent."""
    owner = await conn.fetchval(
        "SELECT g.user_id FROM agents a JOIN gateways g ON g.id = a.gateway_id WHERE a.id = $1",
        agent_id,
    )  # fmt: skip
    return str(owner) if owner is not None else None


async def offline_same_name(tx: Conn, *, gateway_id: str, name: str, agent_id: str) -> None:
    """Orphan cleanup (realtime.md §5.1 step 3): older agents of this name on the gateway."""
    await tx.execute(
        "UPDATE agents SET status = 'offline' WHERE gateway_id = $1 AND name = $2 "
        "AND status = 'online' AND id <> $3",
        gateway_id, name, agent_id,
    )  # fmt: skip


async def upsert_agent(
    tx: Conn, *, agent_id: str, name: str, agent_type: str, gateway_id: str,
    working_directory: str | None, capabilities: Sequence[str] | None,
    slash_commands: Sequence[Mapping[str, str]] | None, mcp_servers: Sequence[str] | None,
    model: str | None, now: str,
) -> Row:  # fmt: skip
    """Insert or update the agent as online (realtime.md §5.1 step 4).

    An existing row keeps its `gateway_id`, `visibility` and `visibility_list`; what the
    gateway reports (commands, MCP servers, model) replaces what was stored, absent → NULL.
    """
    row = await tx.fetchrow(
        "INSERT INTO agents (id, name, type, status, gateway_id, working_directory, "
        "capabilities, connection_type, slash_commands, mcp_servers, model, last_seen_at, "
        "created_at, updated_at) "
        "VALUES ($1, $2, $3, 'online', $4, $5, $6, 'cli', $8, $9, $10, $7, $7, $7) "
        "ON CONFLICT (id) DO UPDATE SET name = $2, type = $3, status = 'online', "
        "working_directory = $5, capabilities = $6, connection_type = 'cli', "
        "slash_commands = $8, mcp_servers = $9, model = $10, "
        f"last_seen_at = $7, updated_at = $7 RETURNING {_SUMMARY}",
        agent_id, name, agent_type, gateway_id, working_directory, _json(capabilities), now,
        _json(slash_commands), _json(mcp_servers), model,
    )  # fmt: skip
    assert row is not None
    return row


def _json(value: Sequence[Any] | None) -> str | None:
    return json.dumps(list(value)) if value is not None else None


async def set_status_in_rooms(
    conn: Conn, agent_ids: Sequence[str], status: str, now: str, *, seen: bool
) -> list[Row]:
    """Set the agents' status (and `last_seen_at` when `seen`) and list their rooms in one
    statement (one round trip): each updated agent's summary once per room it is an agent
    member of (`room_id` NULL for none)."""
    seen_sql = ", last_seen_at = $3" if seen else ""
    return await conn.fetch(
        f"WITH updated AS (UPDATE agents SET status = $2, updated_at = $3{seen_sql} "
        f"WHERE id = ANY($1::text[]) RETURNING {_SUMMARY}) "
        "SELECT updated.*, m.room_id FROM updated LEFT JOIN room_members m "
        "ON m.member_id = updated.id AND m.member_type = 'agent'",
        list(agent_ids), status, now,
    )  # fmt: skip


async def list_agent_room_ids(conn: Conn, agent_id: str) -> list[str]:
    """The rooms the agent is an agent member of, in table order."""
    rows = await conn.fetch(
        "SELECT room_id FROM room_members WHERE member_id = $1 AND member_type = 'agent'",
        agent_id,
    )  # fmt: skip
    return [row["room_id"] for row in rows]


async def is_agent_member(conn: Conn, agent_id: str, room_id: str) -> bool:
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND member_id = $2 "
        "AND member_type = 'agent')",
        room_id, agent_id,
    )  # fmt: skip
    return bool(found)


async def any_agent_member(conn: Conn, agent_ids: Sequence[str], room_id: str) -> bool:
    """One of the agents is an agent member of the room (realtime.md §7.7 step 3)."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 "
        "AND member_id = ANY($2::text[]) AND member_type = 'agent')",
        room_id, list(agent_ids),
    )  # fmt: skip
    return bool(found)


async def list_room_agents(conn: Conn, room_id: str) -> list[Row]:
    """The room's agent members that have an agent row, in member-row order (for routing)."""
    return await conn.fetch(
        "WITH m AS (SELECT member_id, row_number() OVER () AS position FROM room_members "
        "WHERE room_id = $1 AND member_type = 'agent') "
        "SELECT a.id, a.name, a.status, a.type, a.connection_type FROM m "
        "JOIN agents a ON a.id = m.member_id ORDER BY m.position",
        room_id,
    )  # fmt: skip


# realtime.md §4.2 steps 3, 7 and 9 in one round trip (the hot path of every reply): the room
# membership check, the insert (skipped when the id is taken), and, when it inserted and
# $8 asks for it, the agent set online; plus the agent's rooms for the status broadcast.
_COMPLETE: Final = """
WITH member AS (
    SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $2 AND member_id = $3
                   AND member_type = 'agent') AS ok
), ins AS (
    INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, type, content,
                          mentions, chunks, created_at, metadata)
    SELECT $1, $2, $3, 'agent', $4, 'agent_response', $5, '[]', $6, $7, $9 FROM member
    WHERE member.ok
    ON CONFLICT (id) DO NOTHING RETURNING id
), st AS (
    UPDATE agents SET status = 'online', last_seen_at = $7, updated_at = $7
    WHERE id = $3 AND $8 AND EXISTS (SELECT 1 FROM ins)
    RETURNING id, name, type, status, slash_commands, mcp_servers, model
)
SELECT (SELECT ok FROM member) AS member, (SELECT id FROM ins) AS inserted,
       (SELECT name FROM st) AS name, (SELECT type FROM st) AS type,
       (SELECT status FROM st) AS status, (SELECT slash_commands FROM st) AS slash_commands,
       (SELECT mcp_servers FROM st) AS mcp_servers, (SELECT model FROM st) AS model,
       ARRAY(SELECT room_id FROM room_members WHERE member_id = $3
             AND member_type = 'agent') AS room_ids
"""


async def insert_agent_message(
    conn: Conn, *, message_id: str, room_id: str, agent_id: str, agent_name: str, content: str,
    chunks_json: str | None, now: str, set_online: bool, metadata_json: str | None = None,
) -> Row:  # fmt: skip
    """Insert an agent reply if the agent is a member of the room (realtime.md §4.2).

    Returns:
        `member` (the check passed), `inserted` (the id, or None when it was taken), and when
        `set_online` and inserted the agent's summary (`name`, `type`, `status`); `room_ids`.
    """
    row = await conn.fetchrow(
        _COMPLETE, message_id, room_id, agent_id, agent_name, content, chunks_json, now,
        set_online, metadata_json,
    )  # fmt: skip
    assert row is not None  # the final SELECT always yields one row
    return row


async def list_not_offline(conn: Conn) -> list[str]:
    """Agents whose status says a gateway holds them (D14's start-up check); service agents,
    which no gateway holds, are left out."""
    rows = await conn.fetch(
        "SELECT id FROM agents a WHERE status <> 'offline' "
        "AND NOT EXISTS (SELECT 1 FROM service_agents s WHERE s.id = a.id)"
    )
    return [row["id"] for row in rows]


async def offline_among(conn: Conn, agent_ids: Sequence[str]) -> list[str]:
    """The given agents whose row says offline (a survivor released them, actions/reclaim.py)."""
    rows = await conn.fetch(
        "SELECT id FROM agents WHERE id = ANY($1::text[]) AND status = 'offline' ORDER BY id",
        list(agent_ids),
    )
    return [row["id"] for row in rows]


async def link_attachments(conn: Conn, message_id: str, attachment_ids: Sequence[str]) -> None:
    """Attach stored, unlinked uploads to an agent reply (a service agent's media)."""
    await conn.execute(
        "UPDATE message_attachments SET message_id = $1 WHERE id = ANY($2::text[]) "
        "AND message_id IS NULL",
        message_id, list(attachment_ids),
    )  # fmt: skip
