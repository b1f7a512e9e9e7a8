"""Access-token revocation: `revoked:<userId>` = cut-off in epoch ms, TTL = access lifetime.

Reads fail open and writes never fail the caller (api.md §4.4). Revoking also publishes a
control event so every hub process closes that user's sockets (DECISIONS D7, D15).
"""

from __future__ import annotations

import logging
import time

from agentim.protocol.events import control_event
from agentim.store.kv import Kv, KvUnavailable
from agentim.store.pubsub import EventBus

log = logging.getLogger("TokenRevocation")


async def revoked_cutoff(kv: Kv, user_id: str) -> int | None:
    try:
        value = await kv.get(f"revoked:{user_id}")
    except KvUnavailable:
        log.warning("Redis unavailable for token revocation check, allowing request (fail-open)")
        return None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def revoke_user(kv: Kv, events: EventBus, user_id: str, *, ttl_s: int) -> None:
    """Cut off every token issued up to now and close the user's sockets everywhere."""
    now_ms = int(time.time() * 1000)
    try:
        await kv.set(f"revoked:{user_id}", str(now_ms), ex=ttl_s)
    except KvUnavailable as exc:
        log.error("Failed to set token revocation for user %s: %s", user_id, exc)
    await events.publish(control_event("revoke_user", user_id))
