"""OAuth states kept in this process while Redis is unreachable (DIFFERENCES D16's rule for
in-flight requests; the reference keeps them in memory when it runs without Redis).

A state stored here can only be completed by a callback reaching this same process; past
`MAX_PENDING` live entries a new sign-in is refused rather than letting memory grow.
"""

from __future__ import annotations

from typing import Final

import trio

MAX_PENDING: Final = 1000  # as the reference's in-memory store


class PendingStates:
    def __init__(self, limit: int = MAX_PENDING) -> None:
        self._limit = limit
        self._entries: dict[str, tuple[str, float]] = {}  # state -> (entry JSON, trio deadline)

    def _purge(self) -> None:
        now = trio.current_time()
        for state in [s for s, (_, deadline) in self._entries.items() if deadline <= now]:
            del self._entries[state]

    def put(self, state: str, entry: str, ttl_s: float) -> bool:
        """Keep `entry` for `ttl_s`; False when `MAX_PENDING` live entries are already kept."""
        self._purge()
        if len(self._entries) >= self._limit:
            return False
        self._entries[state] = (entry, trio.current_time() + ttl_s)
        return True

    def take(self, state: str) -> str | None:
        """The entry, removed; None if unknown or expired."""
        found = self._entries.pop(state, None)
        if found is None or found[1] <= trio.current_time():
            return None
        return found[0]
