"""Gateway rows (api.md §14.3) and the gateway side's shared Redis state.

Redis keys (D12, D14, D17):
- `agent:gw:<agentId>` → the hub process id holding the agent's gateway; `agent:hub:<processId>`
  is the set of agents a process holds. A process is alive while `presence:hub:<processId>`
  exists (its heartbeat), so bindings left by a crashed process read as offline.
- `gw:proc:<gatewayId>` → the hub process id holding the gateway's socket: the one record of
  "is gateway X connected, and where" (the gateway list's live state, relays to a gateway by
  id); it counts only while that process's heartbeat lives, as agent bindings do.
  `gateway:hub:<processId>` is the set of gateways a process holds. A survivor that reclaims a
  dead process (store/processes.py) releases both kinds of binding.
- `perm:<requestId>` → a pending permission request (JSON) with a TTL; `perm:room:<roomId>` is
  the set of a room's pending request ids, re-sent to clients that join the room.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from agentim.store.db import Conn, Row
from agentim.store.kv import Kv, KvUnavailable

FOREIGN: Final = "foreign"
BINDING_TTL_S: Final = 7 * 86400  # bindings are deleted on unbind; the TTL only bounds leaks
PERMISSION_SLACK_S: Final = 60  # a request's key outlives its expiry, so the expiry finds it

# ARGV: the key prefix, the binding's key prefix (`agent:gw:` or `gw:proc:`), then ids; returns
# the ids bound to a live process.
_LIVE_LUA: Final = """
local live = {}
for i = 3, #ARGV do
  local pid = redis.call('GET', ARGV[1] .. ARGV[2] .. ARGV[i])
  if pid and redis.call('EXISTS', ARGV[1] .. 'presence:hub:' .. pid) == 1 then
    table.insert(live, ARGV[i])
  end
end
return live
"""
# ARGV: the key prefix, the process id, then agent ids: drop the bindings still ours.
_UNBIND_LUA: Final = """
for i = 3, #ARGV do
  local key = ARGV[1] .. 'agent:gw:' .. ARGV[i]
  if redis.call('GET', key) == ARGV[2] then redis.call('DEL', key) end
  redis.call('SREM', ARGV[1] .. 'agent:hub:' .. ARGV[2], ARGV[i])
end
return 1
"""

# KEYS: the gateway's binding, the process's set. ARGV: gateway id, process id.
_UNBIND_GATEWAY_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[2] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""

# ARGV: the key prefix, the process id: the agents of the process's set still bound to it.
_OWNED_LUA: Final = """
local owned = {}
for _, id in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'agent:hub:' .. ARGV[2])) do
  if redis.call('GET', ARGV[1] .. 'agent:gw:' .. id) == ARGV[2] then table.insert(owned, id) end
end
return owned
"""


# ARGV: the key prefix, the gateway id: the process holding it if that process is alive.
_GATEWAY_PROCESS_LUA: Final = """
local pid = redis.call('GET', ARGV[1] .. 'gw:proc:' .. ARGV[2])
if pid and redis.call('EXISTS', ARGV[1] .. 'presence:hub:' .. pid) == 1 then return pid end
return false
"""


async def upsert_gateway(
    conn: Conn, *, gateway_id: str, user_id: str, hostname: str, platform: str, arch: str,
    node_version: str, now: str, agentim_version: str | None = None, ephemeral: bool = False,
) -> str | None:  # fmt: skip
    """Record a gateway authentication (realtime.md §1.2.3; 631a1ad's `ephemeral` and
    `deviceInfo.agentimVersion`, migration 0002).

    Returns:
        None when recorded, FOREIGN when the id belongs to another user (row untouched).
    """
    owner = await conn.fetchval(
        "INSERT INTO gateways (id, user_id, name, hostname, platform, arch, node_version, "
        "connected_at, created_at, agentim_version, ephemeral) "
        "VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $7, $8, $9) "
        "ON CONFLICT (id) DO UPDATE SET connected_at = $7, disconnected_at = NULL, "
        "hostname = $3, platform = $4, arch = $5, node_version = $6, agentim_version = $8, "
        "ephemeral = $9 WHERE gateways.user_id = $2 RETURNING user_id",
        gateway_id, user_id, hostname, platform, arch, node_version, now, agentim_version,
        ephemeral,
    )  # fmt: skip
    return None if owner == user_id else FOREIGN


async def mark_disconnected(conn: Conn, gateway_id: str, now: str) -> None:
    await conn.execute("UPDATE gateways SET disconnected_at = $2 WHERE id = $1", gateway_id, now)


async def list_user_gateways(conn: Conn, user_id: str) -> list[Row]:
    """The user's gateways, ephemeral ones (started for a single run) left out (A18)."""
    return await conn.fetch(
        "SELECT * FROM gateways WHERE user_id = $1 AND NOT ephemeral ORDER BY created_at, id",
        user_id,
    )  # fmt: skip


async def get_gateway(conn: Conn, gateway_id: str, *, for_update: bool = False) -> Row | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM gateways WHERE id = $1{lock}", gateway_id)


async def list_offline_since(conn: Conn, cutoff: str, *, limit: int) -> list[Row]:
    """Gateways disconnected before `cutoff` (ISO text), locked; rows another process has
    locked are skipped, so concurrent sweepers never take the same gateway."""
    return await conn.fetch(
        "SELECT id, user_id FROM gateways WHERE disconnected_at IS NOT NULL "
        "AND disconnected_at < $1 ORDER BY disconnected_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        cutoff, limit,
    )  # fmt: skip


async def delete_gateway(
    tx: Conn, gateway_id: str, *, tombstone_for: str | None, now: str
) -> tuple[list[str], list[str]]:
    """Delete the gateway, its agents (FK cascade) and their room memberships.

    Args:
        tombstone_for: when set, the agents get deleted-agent tombstones (D13) naming this
            user, so their gateway cannot register them again.

    Returns:
        (the deleted agent ids, the ids of the rooms they were members of).
    """
    agent_ids = [r["id"] for r in await tx.fetch(
        "SELECT id FROM agents WHERE gateway_id = $1 ORDER BY id", gateway_id)]  # fmt: skip
    rooms = await tx.fetch(
        "DELETE FROM room_members WHERE member_type = 'agent' AND member_id = ANY($1::text[]) "
        "RETURNING room_id",
        agent_ids,
    )  # fmt: skip
    if tombstone_for is not None and agent_ids:
        await tx.execute(
            "INSERT INTO deleted_agents (agent_id, user_id, deleted_at) "
            "SELECT unnest($1::text[]), $2, $3 "
            "ON CONFLICT (agent_id) DO UPDATE SET user_id = $2, deleted_at = $3",
            agent_ids, tombstone_for, now,
        )  # fmt: skip
    await tx.execute("DELETE FROM gateways WHERE id = $1", gateway_id)
    return agent_ids, list(dict.fromkeys(r["room_id"] for r in rooms))


class GatewayKv:
    """Agent bindings and pending permission requests in Redis (see the module docstring).

    Every failure is a KvUnavailable (Kv maps them).
    """

    def __init__(self, kv: Kv) -> None:
        self._kv = kv

    async def bind(self, agent_id: str, process_id: str) -> None:
        await self._kv.set(f"agent:gw:{agent_id}", process_id, ex=BINDING_TTL_S)
        await self._kv.sadd_expire(f"agent:hub:{process_id}", agent_id, BINDING_TTL_S)

    async def unbind(self, agent_ids: Sequence[str], process_id: str) -> None:
        """Drop the bindings of these agents that still name this process."""
        if agent_ids:
            args = [self._kv.prefix, process_id, *agent_ids]
            await self._kv.eval_script(_UNBIND_LUA, [], args)

    async def live_agents(self, agent_ids: Sequence[str]) -> set[str]:
        """The agents among `agent_ids` whose gateway is on a live hub process."""
        return await self._live("agent:gw:", agent_ids)

    async def process_agents(self, process_id: str) -> set[str]:
        """The agents bound to this process (not since taken over by another one)."""
        found = await self._kv.eval_script(_OWNED_LUA, [], [self._kv.prefix, process_id])
        return _names(found)

    async def forget_process(self, process_id: str) -> None:
        await self._kv.delete(f"agent:hub:{process_id}")

    # where each gateway's socket is (A18, relays by gateway id) ------------------------------
    async def bind_gateway(self, gateway_id: str, process_id: str) -> None:
        """The gateway's socket is on this process (a survivor marks its row disconnected if
        the process dies, store/processes.py)."""
        await self._kv.set(f"gw:proc:{gateway_id}", process_id, ex=BINDING_TTL_S)
        await self._kv.sadd_expire(f"gateway:hub:{process_id}", gateway_id, BINDING_TTL_S)

    async def unbind_gateway(self, gateway_id: str, process_id: str) -> None:
        """Drop the gateway's record if it still names this process."""
        keys = [self._kv.key(f"gw:proc:{gateway_id}"), self._kv.key(f"gateway:hub:{process_id}")]
        await self._kv.eval_script(_UNBIND_GATEWAY_LUA, keys, [gateway_id, process_id])

    async def gateway_process(self, gateway_id: str) -> str | None:
        """The live hub process holding the gateway's socket, or None (offline)."""
        reply = await self._kv.eval_script(_GATEWAY_PROCESS_LUA, [], [self._kv.prefix, gateway_id])
        return None if reply is None or reply is False else _name(reply)

    async def live_gateways(self, gateway_ids: Sequence[str]) -> set[str]:
        """The gateways among `gateway_ids` held by a live hub process."""
        return await self._live("gw:proc:", gateway_ids)

    async def _live(self, binding: str, ids: Sequence[str]) -> set[str]:
        """The ids whose `<binding><id>` names a live hub process."""
        if not ids:
            return set()
        found = await self._kv.eval_script(_LIVE_LUA, [], [self._kv.prefix, binding, *ids])
        return _names(found)

    # permission requests ----------------------------------------------------------------------
    async def put_permission(self, request: dict[str, Any], ttl_s: int) -> bool:
        """Store a new request; False when its id is already pending."""
        key = f"perm:{request['requestId']}"
        if not await self._kv.set(key, json.dumps(request), ex=ttl_s + PERMISSION_SLACK_S, nx=True):
            return False
        room_key = f"perm:room:{request['roomId']}"
        await self._kv.sadd_expire(room_key, request["requestId"], ttl_s + PERMISSION_SLACK_S)
        return True

    async def get_permission(self, request_id: str) -> dict[str, Any] | None:
        text = await self._kv.get(f"perm:{request_id}")
        return json.loads(text) if text else None

    async def claim_permission(self, request_id: str) -> dict[str, Any] | None:
        """Take the request (GETDEL): exactly one answer or expiry gets it."""
        raw = await self._kv._call(self._kv.client.getdel, self._kv.key(f"perm:{request_id}"))
        if raw is None:
            return None
        request: dict[str, Any] = json.loads(raw)
        await self._forget_in_room(request["roomId"], [request_id])
        return request

    async def room_permissions(self, room_id: str) -> list[dict[str, Any]]:
        """The room's pending requests, oldest expiry first; stale ids are pruned."""
        ids: list[str] = sorted(await self._kv.smembers(f"perm:room:{room_id}"))
        if not ids:
            return []
        values = await self._kv.mget(*(f"perm:{i}" for i in ids))
        found = [json.loads(v) for v in values if v is not None]
        stale = [i for i, v in zip(ids, values, strict=True) if v is None]
        if stale:
            await self._forget_in_room(room_id, stale)
        return sorted(found, key=lambda r: r["expiresAt"])

    async def _forget_in_room(self, room_id: str, request_ids: list[str]) -> None:
        await self._kv._call(self._kv.client.srem, self._kv.key(f"perm:room:{room_id}"),
                             *request_ids)  # fmt: skip


def _names(reply: Any) -> set[str]:
    """A script's array reply of names (bytes from Redis) as strings."""
    if not isinstance(reply, list):
        raise KvUnavailable(f"expected an array reply, got {reply!r}")
    return {item.decode() if isinstance(item, bytes) else str(item) for item in reply}


def _name(item: Any) -> str:
    """A script's bulk reply as text."""
    if isinstance(item, bytes):
        return item.decode()
    if isinstance(item, str):
        return item
    raise KvUnavailable(f"expected a bulk reply, got {item!r}")
