"""Per-process routing state used while Redis is unreachable (realtime.md §3.8, DIFFERENCES D16).

Bounded: at most VISITED_CAPACITY visited sets (the agent rate counters are routing/ratelimit's).
"""

from __future__ import annotations

import logging
from typing import Final

import attrs

log = logging.getLogger("GatewayHandler")

VISITED_CAPACITY: Final = 10_000  # realtime.md §3.8: keys kept before the oldest is evicted
VISITED_TTL_S: Final = 300.0  # the Redis key's TTL, refreshed on each add (§8.1)
SWEEP_INTERVAL_S: Final = 60.0  # expired sets are swept at most this often


class VisitedSets:
    """`conv:<id>:visited` kept in process memory: agent ids per key, each key with an expiry.

    Pure: callers pass `now` (seconds on any monotonic clock), so tests need no clock.
    """

    def __init__(
        self, *, capacity: int = VISITED_CAPACITY, ttl_s: float = VISITED_TTL_S,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:  # fmt: skip
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.sweep_interval_s = sweep_interval_s
        self._sets: dict[str, tuple[set[str], float]] = {}  # insertion order = age
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._sets)

    def add(self, key: str, member: str, now: float) -> None:
        """Add `member` to the set at `key` and push its expiry to `now + ttl_s`."""
        self._maybe_sweep(now)
        found = self._live(key, now)
        if found is None:
            self._make_room(now)
            found = set()
        found.add(member)
        self._sets[key] = (found, now + self.ttl_s)  # an existing key keeps its age

    def contains(self, key: str, member: str, now: float) -> bool:
        self._maybe_sweep(now)
        found = self._live(key, now)
        return found is not None and member in found

    def _live(self, key: str, now: float) -> set[str] | None:
        entry = self._sets.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._sets[key]
            return None
        return entry[0]

    def _make_room(self, now: float) -> None:
        if len(self._sets) < self.capacity:
            return
        self._sweep(now)
        if len(self._sets) >= self.capacity:
            log.warning("Visited set fallback at capacity (%d), evicting oldest entry",
                        self.capacity)  # fmt: skip
            del self._sets[next(iter(self._sets))]

    def _maybe_sweep(self, now: float) -> None:
        if now >= self._next_sweep:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._sets = {k: v for k, v in self._sets.items() if v[1] > now}
        self._next_sweep = now + self.sweep_interval_s


@attrs.define
class RoutingFallback:
    """This process's stand-ins for the routing keys in Redis, and whether they are in use
    (so each outage is logged once, not once per message)."""

    visited: VisitedSets = attrs.Factory(VisitedSets)
    visited_in_use: bool = False
