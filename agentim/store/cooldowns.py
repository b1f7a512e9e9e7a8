"""A sender's cooldown towards a backlogged agent, claimed atomically in Redis.

`cooldown:<userId>:<agentId>` holds the epoch ms of the sender's last delivery to that agent.
Reading it and starting a new cooldown are one Lua script, so two messages routed at once (each
message has its own conversation task, maybe on different processes) cannot both see the
cooldown over and both be delivered.
"""

from __future__ import annotations

from typing import Final

from agentim.store.kv import Kv, KvUnavailable

# KEYS[1] the cooldown key; ARGV: now ms, cooldown ms, key TTL s. Returns 0 when the caller
# may deliver (the cooldown starts now), else the ms still to wait.
_CLAIM_LUA: Final = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local now, wait = tonumber(ARGV[1]), tonumber(ARGV[2])
if last > 0 and now - last < wait then
  return wait - (now - last)
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 0
"""


def cooldown_key(user_id: str, agent_id: str) -> str:
    return f"cooldown:{user_id}:{agent_id}"


async def claim_cooldown(
    kv: Kv, user_id: str, agent_id: str, *, now_ms: int, wait_ms: int, ttl_s: int
) -> int:
    """0 when the sender may deliver now (and the cooldown restarts), else the ms to wait.

    Raises:
        KvUnavailable: Redis did not answer (the caller delivers: D16).
    """
    key = kv.key(cooldown_key(user_id, agent_id))
    reply = await kv.eval_script(_CLAIM_LUA, [key], [now_ms, wait_ms, ttl_s])
    if not isinstance(reply, int):
        raise KvUnavailable(f"unexpected reply to the cooldown script: {reply!r}")
    return reply
