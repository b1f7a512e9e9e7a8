"""Access-token revocation: PostgreSQL keeps each user's cut-off, Redis is the fast path
(DIFFERENCES D7, D23). Nothing revoked is accepted while Redis is down or after it lost its data.

`revoked:<userId>` holds the cut-off in epoch ms (TTL = access lifetime) or `0`, which means
"PostgreSQL had no cut-off when checked" and lives only MISS_TTL_S. A missing key (never
checked, expired, or Redis restarted empty) and an unreachable Redis both fall through to
PostgreSQL; whatever PostgreSQL answers is copied back into Redis. Writes to the key only ever
raise it (`0` never hides a cut-off, an older cut-off never hides a newer one). Revoking also
publishes a control event so every hub process closes that user's sockets (D7, D15).

A logout revokes exactly one access token (D23): `revoked_token:<sha256 of the token>` holds
`1` until the token's own expiry, or `0` ("PostgreSQL had no row when checked", MISS_TTL_S,
written only where no `1` is). The same fall-through to PostgreSQL applies, and its control
event closes only the sockets that authenticated with that token.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from agentim.auth.tokens import Principal, digest, is_revoked
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


TOKEN_REVOKED: Final = "1"
TOKEN_NOT_REVOKED: Final = "0"


def _key(user_id: str) -> str:
    return f"revoked:{user_id}"


def _token_key(token_hash: str) -> str:
    return f"revoked_token:{token_hash}"


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


async def principal_revoked(kv: Kv, db: Conn, principal: Principal, token: str) -> bool:
    """Is this verified access token refused: behind its user's cut-off (D7) or itself
    revoked by a logout (D23)?

    Raises:
        DbError: Redis could not answer and neither could PostgreSQL (fails closed).
    """
    if is_revoked(principal, await revoked_cutoff(kv, db, principal.user_id)):
        return True
    return await token_revoked(kv, db, digest(token))


async def token_revoked(kv: Kv, db: Conn, token_hash: str) -> bool:
    """Whether exactly this access token (by digest) was revoked; Redis first, then PostgreSQL."""
    try:
        cached = await kv.get(_token_key(token_hash))
    except KvUnavailable:
        log.warning("Redis unavailable for token revocation check, checking PostgreSQL")
        return await revocations.token_revoked(db, token_hash) is not None
    if cached in (TOKEN_REVOKED, TOKEN_NOT_REVOKED):
        return cached == TOKEN_REVOKED
    remaining_s = await revocations.token_revoked(db, token_hash)
    try:
        if remaining_s is not None:
            await kv.set(_token_key(token_hash), TOKEN_REVOKED, ex=remaining_s)
        else:  # NX: never hides a revocation written meanwhile
            await kv.set(_token_key(token_hash), TOKEN_NOT_REVOKED, ex=MISS_TTL_S, nx=True)
    except KvUnavailable:
        pass  # the next check reads PostgreSQL again
    return remaining_s is not None


async def record_token_revocation(tx: Conn, user_id: str, token_hash: str, expires_ms: int) -> None:
    """The durable half of revoking one access token: inside the logout's transaction."""
    await revocations.record_token(tx, user_id, token_hash, expires_ms)


async def announce_token_revocation(
    kv: Kv, events: EventBus, user_id: str, token_hash: str, *, ttl_s: int
) -> bool:
    """After commit: mark the token in Redis and close the sockets that authenticated with it
    on every process. False when Redis could not take it (retry with `copy_token_revocation`).
    """
    written = True
    try:
        await copy_token_revocation(kv, token_hash, ttl_s)
    except KvUnavailable as exc:
        log.warning("Failed to set token revocation for user %s in Redis (kept in PostgreSQL): %s",
                    user_id, exc)  # fmt: skip
        written = False
    await events.publish(control_event("revoke_token", user_id, token=token_hash))
    return written


async def copy_token_revocation(kv: Kv, token_hash: str, ttl_s: int) -> None:
    """Raises KvUnavailable while Redis is unreachable."""
    await kv.set(_token_key(token_hash), TOKEN_REVOKED, ex=max(1, ttl_s))
