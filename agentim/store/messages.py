"""SQL for messages, their attachments, reactions and edit history (api.md §7, §14.8-14.11)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import attrs

from agentim.store.db import Conn, Row
from agentim.store.membership import IS_MEMBER_SQL, MAY_COMMAND_SQL

# The room's agent members that have an agent row, in member-row order: what routing needs,
# fetched with the insert so a message costs one round trip (agents.list_room_agents' query).
_ROOM_AGENTS: Final = (
    "SELECT json_agg(json_build_object('id', a.id, 'name', a.name, 'status', a.status, "
    "'type', a.type, 'connection_type', a.connection_type) ORDER BY m.position) "
    "FROM (SELECT member_id, row_number() OVER () AS position FROM room_members "
    "WHERE room_id = {room} AND member_type = 'agent') m JOIN agents a ON a.id = m.member_id"
)
# realtime.md §3.1 step 4 as one statement (one round trip on the hot path): the room check,
# the membership check, the insert and the attachment links. The UPDATE runs only when the
# INSERT did; the FK from attachments to the new message is checked at the statement's end.
_SEND: Final = f"""
WITH room AS (
    SELECT r.id, {IS_MEMBER_SQL} AS allowed, {MAY_COMMAND_SQL} AS may_command
    FROM rooms r WHERE r.id = $3
), ins AS (
    INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, type, content,
                          reply_to_id, mentions, created_at)
    SELECT $1, room.id, $2, 'user', $4, 'text', $5, $6, $7, $8 FROM room WHERE room.allowed
    RETURNING id
), att AS (
    UPDATE message_attachments SET message_id = $1
    WHERE id = ANY($9::text[]) AND uploaded_by = $2 AND message_id IS NULL
      AND EXISTS (SELECT 1 FROM ins)
    RETURNING id, message_id, filename, mime_type, size, url, created_at
)
SELECT (SELECT count(*) FROM room) AS room_found,
       (SELECT count(*) FROM ins) AS inserted,
       (SELECT json_agg(json_build_object('id', id, 'message_id', message_id,
                'filename', filename, 'mime_type', mime_type, 'size', size, 'url', url)
                ORDER BY created_at, id) FROM att) AS attachments,
       CASE WHEN EXISTS (SELECT 1 FROM ins) THEN ({_ROOM_AGENTS.format(room="$3")}) END AS agents,
       (SELECT may_command FROM room) AS may_command
"""
# Several messages of one sender in one statement (a burst read off one socket): each row is
# checked as _SEND checks one, and the rows come back in input order. No attachments here.
_SEND_MANY: Final = f"""
WITH input AS (
    SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
        WITH ORDINALITY AS i(id, room_id, content, reply_to_id, mentions, created_at, n)
), checked AS (
    SELECT i.*, r.id IS NOT NULL AS room_found,
           r.id IS NOT NULL AND {IS_MEMBER_SQL} AS allowed,
           r.id IS NOT NULL AND {MAY_COMMAND_SQL} AS may_command
    FROM input i LEFT JOIN rooms r ON r.id = i.room_id
), ins AS (
    INSERT INTO messages (id, room_id, sender_id, sender_type, sender_name, type, content,
                          reply_to_id, mentions, created_at)
    SELECT id, room_id, $2, 'user', $1, 'text', content, reply_to_id, mentions, created_at
    FROM checked WHERE allowed ORDER BY n
    RETURNING room_id
), room_agents AS (
    SELECT r.room_id, ({_ROOM_AGENTS.format(room="r.room_id")}) AS agents
    FROM (SELECT DISTINCT room_id FROM ins) r
)
SELECT c.room_found, c.allowed AS inserted, ra.agents, c.may_command
FROM checked c LEFT JOIN room_agents ra ON ra.room_id = c.room_id AND c.allowed
ORDER BY c.n
"""


@attrs.frozen
class SendOutcome:
    room_found: bool
    inserted: bool
    attachments: list[dict[str, Any]]
    # the room's agent members (id, name, status, type, connection_type) when inserted
    agents: list[dict[str, Any]] = attrs.field(factory=list)
    may_command: bool = True  # the sender meets the room's agentCommandRole (B8)


@attrs.frozen
class NewMessage:
    """One text message of a burst, as insert_user_messages takes it."""

    message_id: str
    room_id: str
    content: str
    reply_to_id: str | None
    mentions: list[str]
    now: str


async def insert_user_message(
    conn: Conn, *, message_id: str, room_id: str, user_id: str, username: str, content: str,
    reply_to_id: str | None, mentions: list[str], attachment_ids: Sequence[str], now: str,
) -> SendOutcome:  # fmt: skip
    """Insert a user's text message if the room exists and the user may post there.

    Returns:
        Whether the room exists, whether the message was inserted (the caller was a member),
        and the attachments linked to it (only the caller's unlinked uploads among the ids).
    """
    row = await conn.fetchrow(
        _SEND, message_id, user_id, room_id, username, content, reply_to_id,
        _mentions_json(mentions), now,
        list(attachment_ids),
    )  # fmt: skip
    assert row is not None  # the final SELECT always yields one row
    linked = json.loads(row["attachments"]) if row["attachments"] else []
    return SendOutcome(
        bool(row["room_found"]), bool(row["inserted"]), linked, _agents(row["agents"]),
        row["may_command"] is not False,
    )  # fmt: skip


async def insert_user_messages(
    conn: Conn, *, user_id: str, username: str, messages: Sequence[NewMessage]
) -> list[SendOutcome]:
    """insert_user_message for several messages (without attachments) in one statement.

    Returns:
        One outcome per message, in order. A failing row (a bad reply id) fails them all.
    """
    rows = await conn.fetch(
        _SEND_MANY, username, user_id,
        [m.message_id for m in messages], [m.room_id for m in messages],
        [m.content for m in messages], [m.reply_to_id for m in messages],
        [_mentions_json(m.mentions) for m in messages], [m.now for m in messages],
    )  # fmt: skip
    return [_outcome(r) for r in rows]


def _outcome(row: Row) -> SendOutcome:
    """A burst row's outcome (no attachments in bursts)."""
    return SendOutcome(
        bool(row["room_found"]), bool(row["inserted"]), [], _agents(row["agents"]),
        row["may_command"] is not False,
    )  # fmt: skip


def _mentions_json(mentions: list[str]) -> str:
    return json.dumps(mentions, separators=(",", ":"), ensure_ascii=False)


def _agents(value: str | None) -> list[dict[str, Any]]:
    return list(json.loads(value)) if value else []


async def get_message_for_member(conn: Conn, message_id: str, user_id: str) -> Row | None:
    """The message row plus `is_member` (the caller may read its room), or None."""
    return await conn.fetchrow(
        f"SELECT m.*, {IS_MEMBER_SQL} AS is_member FROM messages m "
        "JOIN rooms r ON r.id = m.room_id WHERE m.id = $1",
        message_id, user_id,
    )  # fmt: skip


async def lock_message_for_member(conn: Conn, message_id: str, user_id: str) -> Row | None:
    """As get_message_for_member, holding the message row until the transaction ends."""
    return await conn.fetchrow(
        f"SELECT m.*, {IS_MEMBER_SQL} AS is_member FROM messages m "
        "JOIN rooms r ON r.id = m.room_id WHERE m.id = $1 FOR UPDATE OF m",
        message_id, user_id,
    )  # fmt: skip


# The member's clearing point in a room as text (PUT /api/rooms/:id/clear): messages created
# before it are hidden from that member; '' (below every timestamp) when never cleared.
def cleared_since_sql(room: str, user: str) -> str:
    return (
        "COALESCE((SELECT cm.cleared_at FROM room_members cm WHERE cm.room_id = "
        f"{room} AND cm.member_id = {user} AND cm.member_type = 'user'), '')"
    )


async def list_room_messages(
    conn: Conn, room_id: str, user_id: str, *, limit: int, before: str | None, after: str | None
) -> list[Row]:
    """Newest first, at most `limit` rows; `after` (exclusive) wins over `before` (exclusive).

    Messages older than the user's clearing point are left out.
    """
    if after is not None:
        where, bound = "AND created_at > $2", after
    elif before is not None:
        where, bound = "AND created_at < $2", before
    else:
        where, bound = "AND $2::text IS NULL", None
    return await conn.fetch(
        f"SELECT * FROM messages WHERE room_id = $1 {where} "
        f"AND created_at >= {cleared_since_sql('$1', '$4')} "
        "ORDER BY created_at DESC, id DESC LIMIT $3",
        room_id, bound, limit, user_id,
    )  # fmt: skip


@attrs.frozen(kw_only=True)
class SearchFilters:
    """What GET /api/messages/search narrows by, besides the text (None: no filter)."""

    room_id: str | None = None
    sender_id: str | None = None
    sender_type: str | None = None
    sender_pattern: str | None = None  # sender name ILIKE (the hub's `sender`)
    since: str | None = None  # created at or after
    until: str | None = None  # created at or before


async def search_messages(
    conn: Conn, user_id: str, *, pattern: str, filters: SearchFilters, limit: int
) -> list[Row]:
    """Messages whose content ILIKE `pattern` in the caller's member rooms (or the one room),
    newest first, without what the caller cleared in each room.

    Patterns arrive escaped (backslash is PostgreSQL's default LIKE escape); the trigram index
    messages_content_trgm_idx serves the ILIKE.
    """
    return await conn.fetch(
        "SELECT m.* FROM messages m JOIN room_members rm ON rm.room_id = m.room_id "
        "AND rm.member_id = $1 AND rm.member_type = 'user' "
        "WHERE ($2::text IS NULL OR m.room_id = $2) AND m.content ILIKE $3 "
        "AND ($4::text IS NULL OR m.sender_name ILIKE $4) "
        "AND ($5::text IS NULL OR m.created_at >= $5) AND ($6::text IS NULL OR m.created_at <= $6) "
        "AND ($7::text IS NULL OR m.sender_id = $7) AND ($8::text IS NULL OR m.sender_type = $8) "
        "AND (rm.cleared_at IS NULL OR m.created_at >= rm.cleared_at) "
        "ORDER BY m.created_at DESC, m.id DESC LIMIT $9",
        user_id, filters.room_id, pattern, filters.sender_pattern, filters.since, filters.until,
        filters.sender_id, filters.sender_type, limit,
    )  # fmt: skip


async def list_thread(
    conn: Conn, message_id: str, user_id: str, *, after: str | None, limit: int
) -> list[Row]:
    """Replies to a message, oldest first, created after `after` (exclusive); replies older
    than the user's clearing point in their room are left out."""
    return await conn.fetch(
        "SELECT * FROM messages m WHERE m.reply_to_id = $1 "
        "AND ($2::text IS NULL OR m.created_at > $2) "
        f"AND m.created_at >= {cleared_since_sql('m.room_id', '$3')} "
        "ORDER BY m.created_at, m.id LIMIT $4",
        message_id, after, user_id, limit,
    )  # fmt: skip


async def count_replies(conn: Conn, message_id: str, user_id: str) -> int:
    """How many replies list_thread would show the user in all."""
    count = await conn.fetchval(
        "SELECT count(*) FROM messages m WHERE m.reply_to_id = $1 "
        f"AND m.created_at >= {cleared_since_sql('m.room_id', '$2')}",
        message_id, user_id,
    )  # fmt: skip
    return int(count)


async def list_attachments(conn: Conn, message_ids: Sequence[str]) -> list[Row]:
    return await conn.fetch(
        "SELECT id, message_id, filename, mime_type, size, url FROM message_attachments "
        "WHERE message_id = ANY($1::text[]) ORDER BY created_at, id",
        list(message_ids),
    )  # fmt: skip


async def list_attachment_urls(conn: Conn, message_ids: Sequence[str]) -> list[str]:
    rows = await conn.fetch(
        "SELECT url FROM message_attachments WHERE message_id = ANY($1::text[])",
        list(message_ids),
    )  # fmt: skip
    return [row["url"] for row in rows]


async def list_reactions(conn: Conn, message_ids: Sequence[str]) -> list[Row]:
    """Reaction rows with the reactor's username, in insertion order per message."""
    return await conn.fetch(
        "SELECT r.message_id, r.emoji, r.user_id, u.username FROM message_reactions r "
        "JOIN users u ON u.id = r.user_id WHERE r.message_id = ANY($1::text[]) "
        "ORDER BY r.created_at",
        list(message_ids),
    )  # fmt: skip


async def delete_reaction(conn: Conn, message_id: str, user_id: str, emoji: str) -> bool:
    status = await conn.execute(
        "DELETE FROM message_reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3",
        message_id, user_id, emoji,
    )  # fmt: skip
    return status != "DELETE 0"


async def count_user_reactions(conn: Conn, message_id: str, user_id: str) -> int:
    count = await conn.fetchval(
        "SELECT count(*) FROM message_reactions WHERE message_id = $1 AND user_id = $2",
        message_id, user_id,
    )  # fmt: skip
    return int(count)


async def insert_reaction(conn: Conn, message_id: str, user_id: str, emoji: str, now: str) -> None:
    await conn.execute(
        "INSERT INTO message_reactions (message_id, user_id, emoji, created_at) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        message_id, user_id, emoji, now,
    )  # fmt: skip


async def update_content(
    conn: Conn, *, message_id: str, edit_id: str, previous: str, content: str, now: str
) -> Row:
    """Record the previous content as an edit and store the new one; returns the new row."""
    await conn.execute(
        "INSERT INTO message_edits (id, message_id, previous_content, edited_at) "
        "VALUES ($1, $2, $3, $4)",
        edit_id, message_id, previous, now,
    )  # fmt: skip
    row = await conn.fetchrow(
        "UPDATE messages SET content = $2, updated_at = $3 WHERE id = $1 RETURNING *",
        message_id, content, now,
    )  # fmt: skip
    assert row is not None  # locked by the caller
    return row


async def list_edits(conn: Conn, message_id: str, *, limit: int) -> list[Row]:
    return await conn.fetch(
        "SELECT * FROM message_edits WHERE message_id = $1 ORDER BY edited_at DESC, id DESC "
        "LIMIT $2",
        message_id, limit,
    )  # fmt: skip


async def get_messages(conn: Conn, message_ids: Sequence[str]) -> list[Row]:
    return await conn.fetch(
        "SELECT id, room_id, sender_id, sender_type FROM messages WHERE id = ANY($1::text[]) "
        "ORDER BY created_at, id",
        list(message_ids),
    )  # fmt: skip


async def delete_messages(conn: Conn, message_ids: Sequence[str]) -> list[str]:
    """Delete (cascading to attachments, reactions, edits); returns the ids that existed."""
    rows = await conn.fetch(
        "DELETE FROM messages WHERE id = ANY($1::text[]) RETURNING id", list(message_ids)
    )
    return [row["id"] for row in rows]


async def list_recent(conn: Conn, user_id: str) -> list[Row]:
    """Per member room with messages the user has not cleared: the newest one and the
    caller's unread count (both after the clearing point)."""
    return await conn.fetch(
        "SELECT rm.room_id, last.content, last.sender_name, last.created_at, "
        "(SELECT count(*) FROM messages x WHERE x.room_id = rm.room_id "
        "AND x.created_at >= COALESCE(rm.cleared_at, '') AND "
        "(rm.last_read_at IS NULL OR x.created_at > rm.last_read_at)) AS unread "
        "FROM room_members rm JOIN LATERAL (SELECT content, sender_name, created_at "
        "FROM messages WHERE room_id = rm.room_id AND created_at >= COALESCE(rm.cleared_at, '') "
        "ORDER BY created_at DESC LIMIT 1) last ON true "
        "WHERE rm.member_id = $1 AND rm.member_type = 'user'",
        user_id,
    )  # fmt: skip


async def mark_room_read(conn: Conn, user_id: str, room_id: str, now: str) -> None:
    await conn.execute(
        "UPDATE room_members SET last_read_at = $3 WHERE room_id = $2 AND member_id = $1 "
        "AND member_type = 'user'",
        user_id, room_id, now,
    )  # fmt: skip


async def mark_all_read(conn: Conn, user_id: str, now: str) -> list[str]:
    """Mark every member room read; returns their ids."""
    rows = await conn.fetch(
        "UPDATE room_members SET last_read_at = $2 WHERE member_id = $1 AND member_type = 'user' "
        "RETURNING room_id",
        user_id, now,
    )  # fmt: skip
    return [row["room_id"] for row in rows]


async def list_context_messages(
    conn: Conn, room_id: str, *, limit: int, chars: int, since: str | None = None
) -> list[Row]:
    """The room's latest `limit` messages (created at or after `since`), oldest first, content
    cut to `chars` characters (`server:room_context.context.recentMessages`, 631a1ad)."""
    return await conn.fetch(
        "SELECT sender_name, sender_type, content, created_at FROM ("
        "SELECT sender_name, sender_type, left(content, $3) AS content, created_at, id "
        "FROM messages WHERE room_id = $1 AND created_at >= COALESCE($4::text, '') "
        "ORDER BY created_at DESC, id DESC LIMIT $2"
        ") latest ORDER BY created_at, id",
        room_id, limit, chars, since,
    )  # fmt: skip
