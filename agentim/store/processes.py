"""Hub processes in Redis: who is alive, and what a dead one owned, claimed by one survivor.

Keys (with the optional prefix):
- `presence:hub:<processId>`: the liveness key, renewed by the process's heartbeat (PX = the
  liveness TTL). A process is alive while it exists.
- `hub:processes`: the set of processes that registered and did not yet leave or get reclaimed;
  a member without a liveness key is dead.
- `hub:reclaim:<processId>`: a survivor's lease (SET NX PX) on reclaiming a dead process, so
  several sweeping processes never do the work twice; it expires by itself, so a survivor that
  dies half-way leaves the work to the next sweep.
- `hub:reclaimed:<processId>`: set when a process was reclaimed; if it was only stalled, its
  next beat finds the mark and puts back what the survivor released.
- What a process owns: `agent:hub:<processId>` (agents, each bound by `agent:gw:<agentId>`),
  `gateway:hub:<processId>` (gateway ids, each bound by `gw:proc:<gatewayId>`) and
  `presence:users:<processId>` (userId → username of its users with a client socket).
"""

from __future__ import annotations

import enum
from typing import Any, Final

import attrs

from agentim.store.kv import Kv, KvUnavailable

REGISTRY: Final = "hub:processes"
RECLAIMED_MARK_TTL_S: Final = 86400  # a stalled process that wakes later than this re-registers

# KEYS: liveness key, registry, reclaimed marker. ARGV: process id, TTL ms. Returns 0 when the
# process was registered; 2 when a survivor reclaimed it (it was stalled, not dead); 1 when it
# was not registered otherwise (its first beat, or Redis lost its data).
_BEAT_LUA: Final = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('DEL', KEYS[3]) == 1 then return 2 end
return 1
"""
# ARGV: prefix, dead process id, claimer id, lease ms. Nil unless the process is registered,
# dead and unclaimed; else {agents still bound to it, gateways still at it, users → names}.
_CLAIM_LUA: Final = """
local p, dead = ARGV[1], ARGV[2]
if redis.call('EXISTS', p .. 'presence:hub:' .. dead) == 1 then return false end
if redis.call('SISMEMBER', p .. 'hub:processes', dead) == 0 then return false end
if not redis.call('SET', p .. 'hub:reclaim:' .. dead, ARGV[3], 'NX', 'PX', ARGV[4]) then
  return false
end
local function still_bound(set_key, binding_prefix)
  local found = {}
  for _, id in ipairs(redis.call('SMEMBERS', set_key)) do
    if redis.call('GET', binding_prefix .. id) == dead then table.insert(found, id) end
  end
  return found
end
return {
  still_bound(p .. 'agent:hub:' .. dead, p .. 'agent:gw:'),
  still_bound(p .. 'gateway:hub:' .. dead, p .. 'gw:proc:'),
  redis.call('HGETALL', p .. 'presence:users:' .. dead),
}
"""
# ARGV: prefix, dead process id, claimer id, marker TTL s. Drops what the dead process owned
# (bindings only where they still name it, and only if it is still dead) and its registration,
# and marks it reclaimed: if it was only stalled, its next beat finds the mark and reasserts
# what the survivor released.
_FINISH_LUA: Final = """
local p, dead = ARGV[1], ARGV[2]
if redis.call('GET', p .. 'hub:reclaim:' .. dead) ~= ARGV[3] then return 0 end
redis.call('SET', p .. 'hub:reclaimed:' .. dead, '1', 'EX', ARGV[4])
if redis.call('EXISTS', p .. 'presence:hub:' .. dead) == 0 then
  local function unbind(set_key, binding_prefix)
    for _, id in ipairs(redis.call('SMEMBERS', set_key)) do
      if redis.call('GET', binding_prefix .. id) == dead then
        redis.call('DEL', binding_prefix .. id)
      end
    end
    redis.call('DEL', set_key)
  end
  unbind(p .. 'agent:hub:' .. dead, p .. 'agent:gw:')
  unbind(p .. 'gateway:hub:' .. dead, p .. 'gw:proc:')
  redis.call('DEL', p .. 'presence:users:' .. dead)
end
redis.call('SREM', p .. 'hub:processes', dead)
redis.call('DEL', p .. 'hub:reclaim:' .. dead)
return 1
"""


class Beat(enum.IntEnum):
    REGISTERED = 0  # as before
    NEW = 1  # first beat, or Redis lost the registration (restarted empty)
    RECLAIMED = 2  # a survivor took it for dead and released what it owned


@attrs.frozen
class Claimed:
    """What a dead process owned when a survivor claimed it."""

    process_id: str
    agent_ids: list[str]
    gateway_ids: list[str]
    users: dict[str, str]  # userId → username


class ProcessKv:
    """Liveness, registration and reclaim claims (see the module docstring).

    Every failure is a KvUnavailable (Kv maps them).
    """

    def __init__(self, kv: Kv) -> None:
        self._kv = kv

    async def beat(self, process_id: str, ttl_ms: int) -> Beat:
        """Renew the liveness key (and the registration)."""
        keys = [self._kv.key(f"presence:hub:{process_id}"), self._kv.key(REGISTRY),
                self._kv.key(f"hub:reclaimed:{process_id}")]  # fmt: skip
        reply = await self._kv.eval_script(_BEAT_LUA, keys, [process_id, ttl_ms])
        return Beat(reply) if reply in (0, 1, 2) else Beat.REGISTERED

    async def keep_alive(self, process_id: str, ttl_ms: int) -> None:
        """Renew only the liveness key: called where this process takes on a binding, so a
        Redis that lost its data sees it alive at once (the registration follows at the next
        beat, which also puts the other bindings back)."""
        await self._kv._call(
            self._kv.client.set, self._kv.key(f"presence:hub:{process_id}"), "1", px=ttl_ms
        )

    async def stop_beating(self, process_id: str) -> None:
        """A clean exit: dead at once, so a survivor reclaims what is left at its next sweep."""
        await self._kv.delete(f"presence:hub:{process_id}")

    async def registered(self) -> set[str]:
        return await self._kv.smembers(REGISTRY)

    async def claim(self, dead: str, claimer: str, lease_ms: int) -> Claimed | None:
        """Take the lease on a dead process; None when it is alive, done or someone else's."""
        reply = await self._kv.eval_script(
            _CLAIM_LUA, [], [self._kv.prefix, dead, claimer, lease_ms]
        )
        if reply is None:
            return None
        if not (isinstance(reply, list) and len(reply) == 3):
            raise KvUnavailable(f"unexpected reply to the claim script: {reply!r}")
        agents, gateways, flat = (_texts(part) for part in reply)
        users = dict(zip(flat[::2], flat[1::2], strict=True))
        return Claimed(dead, agents, gateways, users)

    async def finish(self, dead: str, claimer: str) -> None:
        args: list[str | int] = [self._kv.prefix, dead, claimer, RECLAIMED_MARK_TTL_S]
        await self._kv.eval_script(_FINISH_LUA, [], args)


def _texts(reply: Any) -> list[str]:
    if not isinstance(reply, list):
        raise KvUnavailable(f"expected an array reply, got {reply!r}")
    return [item.decode() if isinstance(item, bytes) else str(item) for item in reply]
