"""This process's share of the client ↔ gateway relays: the hub control that hands a frame to
one of its gateway sockets (by gateway id, `Hub.gateways`), and the pending requests kept here
while Redis is unreachable (D16; with Redis up they live in Redis, store/relays.py).

A frame for a gateway (by gateway id, not by agent) crosses processes as the hub control
`gateway_frame` addressed to the gateway id; only the process holding that socket delivers it.
"""

from __future__ import annotations

import collections
import time
from typing import Any, Final

from agentim.protocol.events import Event, Target
from agentim.protocol.wsframes import text_frame
from agentim.routing.hub import Hub

GATEWAY_FRAME: Final = "gateway_frame"
MAX_PENDING: Final = 10_000  # fallback entries per process (the reference's cap on its map)


def gateway_frame_event(gateway_id: str, owner_id: str, frame: str) -> Event:
    """The frame (compact JSON) for the gateway socket of that id, if it belongs to `owner_id`."""
    control = {"action": GATEWAY_FRAME, "userId": owner_id}
    return Event(Target.CONTROL, gateway_id, frame, control=control)


def deliver_gateway_frame(hub: Hub, event: Event) -> None:
    """Hub control: hand the frame to the local socket of the gateway, if any."""
    session = hub.gateways.get(event.target_id)
    owner = (event.control or {}).get("userId")
    if session is None or session.user_id != owner or session.id not in hub.sessions:
        return
    session.send_nowait(text_frame(event.frame.encode()))


class RelayState:
    """The fallback for pending requests."""

    def __init__(self) -> None:
        self._pending: collections.OrderedDict[str, tuple[float, dict[str, Any]]] = (
            collections.OrderedDict()
        )
        self._waiters: dict[str, collections.deque[str]] = {}

    # pending requests while Redis is down -----------------------------------------------------
    def put(self, request_id: str, data: dict[str, Any], ttl_s: float) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._pending.popitem(last=False)  # the oldest goes, as in the reference
        self._pending[request_id] = (time.monotonic() + ttl_s, data)

    def take(self, request_id: str) -> dict[str, Any] | None:
        expires, data = self._pending.pop(request_id, (0.0, None))
        return data if data is not None and expires > time.monotonic() else None

    def push_waiter(self, key: str, user_id: str) -> None:
        if key not in self._waiters and len(self._waiters) >= MAX_PENDING:
            self._waiters.pop(next(iter(self._waiters)))
        self._waiters.setdefault(key, collections.deque(maxlen=100)).append(user_id)

    def pop_waiter(self, key: str) -> str | None:
        waiting = self._waiters.get(key)
        if not waiting:
            return None
        user_id = waiting.popleft()
        if not waiting:
            del self._waiters[key]
        return user_id
