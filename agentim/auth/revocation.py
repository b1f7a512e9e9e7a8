"""Access-token revocation: PostgreSQL keeps each user's cut-off, Redis is the fast path
(DECISIONS D7, D23). Nothing revoked is accepted while Redis is down or after it lost its data.

`revoked:<userId>` holds the cut-off in epoch ms (TTL = access lifetime) or `0`, which means
"PostgreSQL had no cut-off when checked" and lives only MISS_TTL_S. A missing key (never
checked, expired, or Redis restarted empty) and an unreachable Redis both fall through to
PostgreSQL; whatever PostgreSQL answers is copied back into Redis. Writes to the key only ever
raise it (`0` never hides a cut-off, an older cut-off never hides a newer one). Revoking also
publishes a control event so every hub process closes that user's sockets (D7, D15).
"""

from __future__ import annotations

import logging
import time
from typing import Final

from agentim.protocol.events import control_event
from agentim.store import revocations
from agentim.store.db import Conn
from agentim.store.kv import Kv, KvUnavailable
from agentim.store.pubsub import EventBus

log = logging.getLogger("TokenRevocation")

# How long a "nothing revoked" answer is trusted from Redis. It bounds the one stale case left:
# a revocation whose Redis write failed while Redis kept its data (the revoking process also
# retries that write, see actions/auth.py); the price is one PostgreSQL read per active user
# per MISS_TTL_S.
MISS_TTL_S: Final = 10
NOTHING_REVOKED: Final = 0
# Raise KEYS[1] to ARGV[1] (ms) with EX ARGV[2]; a lower or equal value changes nothing.
_RAISE_LUA: Final = """
local current = tonumber(redis.call('GET', KEYS[1]) or '')
if current == nil or tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""


def _key(user_id: str) -> str:
    return f"revoked:{user_id}"


def now_ms() -> int:
    return int(time.time() * 1000)


async def revoked_cutoff(kv: Kv, db: Conn, user_id: str) -> int | None:
    """The user's cut-off in epoch ms (tokens issued at or before it are revoked), or None.

    Raises:
        DbError: Redis could not answer and neither could PostgreSQL (fails closed).
    """
    try:
        cached = await kv.get(_key(user_id))
    except KvUnavailable:
        log.warning("Redis unavailable for token revocation check, checking PostgreSQL")
        found = await revocations.get_cutoff(db, user_id)
        return found[0] if found is not None else None
    if cached is not None and cached.isdigit():
        return int(cached) or None
    return await _load(kv, db, user_id)


async def _load(kv: Kv, db: Conn, user_id: str) -> int | None:
    """Read PostgreSQL and warm the fast path (best effort)."""
    found = await revocations.get_cutoff(db, user_id)
    cutoff_ms, ttl_s = found if found is not None else (NOTHING_REVOKED, MISS_TTL_S)
    try:
        await _raise_key(kv, user_id, cutoff_ms, ttl_s)
    except KvUnavailable:
        pass  # the next check reads PostgreSQL again
    return cutoff_ms or None


async def _raise_key(kv: Kv, user_id: str, cutoff_ms: int, ttl_s: int) -> None:
    await kv.eval_script(_RAISE_LUA, [kv.key(_key(user_id))], [cutoff_ms, ttl_s])


async def record_revocation(tx: Conn, user_id: str, cutoff_ms: int, *, ttl_s: int) -> None:
    """The durable half: call inside the transaction that ends the user's sessions."""
    await revocations.record_cutoff(tx, user_id, cutoff_ms, ttl_s)


async def announce_revocation(
    kv: Kv, events: EventBus, user_id: str, cutoff_ms: int, *, ttl_s: int
) -> bool:
    """After commit: raise the fast path and close the user's sockets on every process.

    Returns:
        False when Redis could not take the cut-off; PostgreSQL has it, and the caller should
        retry with `refresh_fast_path` so no process trusts an older `revoked:<userId>`.
    """
    written = True
    try:
        await _raise_key(kv, user_id, cutoff_ms, ttl_s)
    except KvUnavailable as exc:
        log.warning("Failed to set token revocation for user %s in Redis (kept in PostgreSQL): %s",
                  user_id, exc)  # fmt: skip
        written = False
    await events.publish(control_event("revoke_user", user_id))
    return written


async def refresh_fast_path(kv: Kv, db: Conn, user_id: str) -> None:
    """Copy the user's cut-off from PostgreSQL into Redis.

    Raises:
        KvUnavailable: Redis is still unreachable.
    """
    found = await revocations.get_cutoff(db, user_id)
    if found is not None:
        await _raise_key(kv, user_id, *found)
