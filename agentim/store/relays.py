"""SQL and Redis state of the client ↔ gateway relays; the Redis part is shared by every hub
process (D15).

Keys (which process holds a gateway's socket, `gw:proc:<gatewayId>`, is store/gateways.py's):
- `relay:req:<requestId>` → a pending request (JSON: who asked, for which agent and room) that
  the gateway's answer is matched against; it expires with the request's TTL.
- `relay:cmd:<agentId>:<roomId>:<command>` → the users waiting for that command's result,
  oldest first (the gateway's result names no request id).
"""

from __future__ import annotations

import json
from typing import Any, Final

from agentim.store.db import Conn, Row
from agentim.store.kv import Kv, KvUnavailable
from agentim.store.membership import MAY_COMMAND_SQL, ROLE_SQL

_TAKE_LUA: Final = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
"""
_PUSH_LUA: Final = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""
_POP_LUA: Final = "return redis.call('LPOP', KEYS[1])"


class RelayKv:
    """Typed access to the keys above; every failure is a KvUnavailable (Kv maps them)."""

    def __init__(self, kv: Kv) -> None:
        self._kv = kv

    async def put_request(self, request_id: str, data: dict[str, Any], *, ttl_s: int) -> None:
        await self._kv.set(f"relay:req:{request_id}", json.dumps(data), ex=ttl_s)

    async def take_request(self, request_id: str) -> dict[str, Any] | None:
        """The pending request, removed (exactly one answer gets it), or None."""
        reply = await self._kv.eval_script(_TAKE_LUA, [self._kv.key(f"relay:req:{request_id}")],
                                           [])  # fmt: skip
        text = _text(reply)
        return json.loads(text) if text else None

    async def push_waiter(self, key: str, user_id: str, *, ttl_s: int) -> None:
        await self._kv.eval_script(_PUSH_LUA, [self._kv.key(f"relay:cmd:{key}")],
                                   [user_id, ttl_s])  # fmt: skip

    async def pop_waiter(self, key: str) -> str | None:
        return _text(await self._kv.eval_script(_POP_LUA, [self._kv.key(f"relay:cmd:{key}")], []))


def _text(reply: Any) -> str | None:
    """A script's bulk reply as text; nil (None, or False from `return false`) → None."""
    if reply is None or reply is False:
        return None
    if isinstance(reply, bytes):
        return reply.decode()
    if isinstance(reply, str):
        return reply
    raise KvUnavailable(f"expected a bulk reply, got {reply!r}")


# SQL -------------------------------------------------------------------------------------------


async def get_gateway_owner(conn: Conn, gateway_id: str) -> str | None:
    owner = await conn.fetchval("SELECT user_id FROM gateways WHERE id = $1", gateway_id)
    return str(owner) if owner is not None else None


async def command_access(conn: Conn, room_id: str, user_id: str, agent_id: str) -> Row | None:
    """The room's `agent_command_role` as `required`, the user's role there (`role`, None for
    no member: a member row's role, else `owner` for the creator), whether that role may command
    the room's agents (`may_command`, the rule the message insert applies) and whether the agent
    is an agent member (`agent_member`); None when the room does not exist."""
    return await conn.fetchrow(
        f"SELECT r.agent_command_role AS required, {ROLE_SQL} AS role, "
        f"{MAY_COMMAND_SQL} AS may_command, "
        "EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = r.id AND m.member_id = $3 "
        "AND m.member_type = 'agent') AS agent_member FROM rooms r WHERE r.id = $1",
        room_id, user_id, agent_id,
    )  # fmt: skip


async def agent_visible(conn: Conn, agent_id: str, user_id: str) -> bool:
    """The user owns the agent's gateway or shares a room with the agent."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM agents a JOIN gateways g ON g.id = a.gateway_id "
        "WHERE a.id = $1 AND g.user_id = $2) OR EXISTS (SELECT 1 FROM room_members ma "
        "JOIN room_members mu ON mu.room_id = ma.room_id AND mu.member_id = $2 "
        "AND mu.member_type = 'user' WHERE ma.member_id = $1 AND ma.member_type = 'agent')",
        agent_id, user_id,
    )  # fmt: skip
    return bool(found)


async def get_room_message(conn: Conn, room_id: str, message_id: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT id, sender_id, sender_type, content, created_at FROM messages "
        "WHERE id = $1 AND room_id = $2",
        message_id, room_id,
    )  # fmt: skip


async def list_room_agent_capabilities(conn: Conn, room_id: str) -> list[Row]:
    """(`member_id`, `capabilities` JSON text or None, `found`) for each agent member."""
    return await conn.fetch(
        "SELECT m.member_id, a.capabilities, a.id IS NOT NULL AS found FROM room_members m "
        "LEFT JOIN agents a ON a.id = m.member_id WHERE m.room_id = $1 "
        "AND m.member_type = 'agent' ORDER BY m.joined_at, m.member_id",
        room_id,
    )  # fmt: skip


async def delete_messages_from(tx: Conn, room_id: str, since: str) -> tuple[list[str], list[str]]:
    """Delete the room's messages created at or after `since` (attachments go by cascade).

    Returns:
        The deleted message ids (oldest first) and their attachments' URLs (files to unlink).
    """
    urls = await tx.fetch(
        "SELECT a.url FROM message_attachments a JOIN messages m ON m.id = a.message_id "
        "WHERE m.room_id = $1 AND m.created_at >= $2",
        room_id, since,
    )  # fmt: skip
    rows = await tx.fetch(
        "WITH gone AS (DELETE FROM messages WHERE room_id = $1 AND created_at >= $2 "
        "RETURNING id, created_at) SELECT id FROM gone ORDER BY created_at, id",
        room_id, since,
    )  # fmt: skip
    return [row["id"] for row in rows], [row["url"] for row in urls]
