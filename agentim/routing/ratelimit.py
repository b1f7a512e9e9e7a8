"""The hub's one fixed-window rate limiter: Redis counts for every process, this process's
memory while Redis is down (DIFFERENCES D16).

Every limit goes through `RateLimiter.count`: the per-IP classes of api.md §2.4 (HTTP routes and
the WebSocket upgrade), the per-user `ws:rate:<userId>` frame limit and the per-agent
`ws:agent_rate:<agentId>` routing limit. The outage map has one bound for all of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Final

import attrs

from agentim.store.kv import Kv, KvUnavailable

log = logging.getLogger("RateLimit")

FALLBACK_MAX_KEYS: Final = 100_000  # bound on the outage map; expired keys are swept first
IP_WINDOW_S: Final = 60  # api.md §2.4: one minute per class and client IP
IP_LIMITS: Final = {  # requests per IP_WINDOW_S and client IP (api.md §2.4)
    "api": 120,
    "auth": 20,  # login (the reference's authRateLimit); account lockout is the main guard
    "auth_refresh": 60,  # refresh: every web page load calls it
    "sens": 5,
    "upload": 10,
    "router-test": 5,
    "ws_upgrade": 30,
}


class WindowCounters:
    """Fixed-window counters in process memory, at most `max_keys` of them."""

    def __init__(self, max_keys: int = FALLBACK_MAX_KEYS) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self.max_keys = max_keys

    def __len__(self) -> int:
        return len(self._counts)

    def hit(self, key: str, window_s: float, hits: int = 1) -> int:
        now = time.monotonic()
        count, expires = self._counts.get(key, (0, now + window_s))
        if expires <= now:
            count, expires = 0, now + window_s
        if len(self._counts) >= self.max_keys and key not in self._counts:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            if len(self._counts) >= self.max_keys:  # all live: forget the oldest window
                del self._counts[next(iter(self._counts))]
        self._counts[key] = (count + hits, expires)
        return count + hits


@attrs.frozen
class WindowCount:
    count: int  # hits in the current window, these included
    ttl_s: int | None  # seconds until the window resets; None when counted in process memory

    @property
    def from_redis(self) -> bool:
        return self.ttl_s is not None


@attrs.frozen
class Decision:
    """One per-IP check: allowed or not, and what the HTTP headers report."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: int | None  # None on the in-memory path (no headers there, api.md §2.4)
    from_redis: bool

    def headers(self) -> dict[str, str]:
        """X-RateLimit-* (and Retry-After when refused); none while counting in memory."""
        if not self.from_redis:
            return {}
        found = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining)}
        if not self.allowed:
            found["Retry-After"] = str(self.retry_after)
        return found


class RateLimiter:
    """Counts in Redis (`Kv.incr_window`); per process while Redis is unreachable.

    `enabled` switches the per-IP classes only (off in test mode); the per-user and per-agent
    limits always count.
    """

    def __init__(
        self, kv: Kv, *, enabled: bool, ip_limits: Mapping[str, int] = IP_LIMITS,
        max_fallback_keys: int = FALLBACK_MAX_KEYS,
    ) -> None:  # fmt: skip
        self._kv = kv
        self.enabled = enabled
        self.ip_limits = ip_limits
        self.fallback = WindowCounters(max_fallback_keys)
        self._outage: set[str] = set()  # what has logged the current outage (once each)

    async def count(self, key: str, window_s: int, *, hits: int = 1, what: str) -> WindowCount:
        """Add `hits` to the window at `key` (the first hit starts it).

        Args:
            key: the Redis key (unprefixed), e.g. `ws:rate:<userId>`.
            window_s: the window's length.
            hits: how many to count at once.
            what: names the limit in the one outage warning it logs.

        Returns:
            The count so far in this window, from Redis or from this process's memory.
        """
        try:
            count, ttl = await self._kv.incr_window(key, window_s, hits)
        except KvUnavailable as exc:
            if what not in self._outage:
                log.warning("Redis unavailable for %s, counting per process: %s", what, exc)
                self._outage.add(what)
            return WindowCount(self.fallback.hit(key, window_s, hits), None)
        self._outage.discard(what)
        return WindowCount(count, ttl if ttl > 0 else window_s)

    async def hit(self, cls: str, ip: str) -> Decision:
        """One request of per-IP class `cls` (api.md §2.4) from `ip`."""
        limit = self.ip_limits[cls]
        counted = await self.count(f"rl:{cls}:{ip}:{IP_WINDOW_S}", IP_WINDOW_S,
                                   what=f"rate limit {cls}")  # fmt: skip
        decision = Decision(counted.count <= limit, limit, max(0, limit - counted.count),
                            counted.ttl_s, counted.from_redis)  # fmt: skip
        if not decision.allowed:
            log.warning("Too many requests: rate limit %s exceeded for %s", cls, ip)
        return decision
