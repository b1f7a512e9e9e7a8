"""Fixed-window HTTP rate limits per client IP in Redis (api.md §2.4), in-memory on outage."""

from __future__ import annotations

import logging
import time
from typing import Final

import attrs

from agentim.store.kv import Kv, KvUnavailable

log = logging.getLogger("RateLimit")

WINDOW_S: Final = 60
LIMITS: Final = {
    "api": 120,
    "auth": 20,  # login (the reference's authRateLimit); account lockout is the main guard
    "auth_refresh": 60,  # refresh: every web page load calls it
    "sens": 5,
    "upload": 10,
    "router-test": 5,
    "ws_upgrade": 30,
}
FALLBACK_MAX_KEYS: Final = 100_000  # bound on the outage map; expired keys are swept first


@attrs.frozen
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int | None  # None on the in-memory path (no headers there, §2.4)
    from_redis: bool

    def headers(self) -> dict[str, str]:
        if not self.from_redis:
            return {}
        found = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining)}
        if not self.allowed:
            found["Retry-After"] = str(self.retry_after)
        return found


class RateLimiter:
    def __init__(self, kv: Kv, *, enabled: bool) -> None:
        self._kv = kv
        self.enabled = enabled
        self._fallback: dict[str, tuple[int, float]] = {}

    async def hit(self, cls: str, ip: str) -> Decision:
        limit = LIMITS[cls]
        key = f"rl:{cls}:{ip}:{WINDOW_S}"
        try:
            count, ttl = await self._kv.incr_window(key, WINDOW_S)
            decision = Decision(
                count <= limit, limit, max(0, limit - count), ttl if ttl > 0 else WINDOW_S, True
            )
        except KvUnavailable:
            log.warning("Redis unavailable for rate limit %s, using in-memory counters", cls)
            count = self._fallback_hit(key)
            decision = Decision(count <= limit, limit, max(0, limit - count), None, False)
        if not decision.allowed:
            log.warning("Too many requests: rate limit %s exceeded for %s", cls, ip)
        return decision

    def _fallback_hit(self, key: str) -> int:
        now = time.monotonic()
        count, expires = self._fallback.get(key, (0, now + WINDOW_S))
        if expires <= now:
            count, expires = 0, now + WINDOW_S
        if len(self._fallback) >= FALLBACK_MAX_KEYS:
            self._fallback = {k: v for k, v in self._fallback.items() if v[1] > now}
        self._fallback[key] = (count + 1, expires)
        return count + 1
