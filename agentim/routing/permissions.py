"""PermissionBroker: the expiry timers of the permission requests this process received (D17).

One task for all of them: a deadline heap and one cancel scope whose deadline is the earliest
expiry, moved when an earlier one arrives (STYLE §5.19), never a task per request. Requests
reach it as the hub control `permission_pending`; whether one was answered meanwhile is
decided by `on_expire` (the GETDEL in actions/permissions.py), so answers need no message here.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from agentim.protocol.events import Event
from agentim.routing.hub import Hub

log = logging.getLogger("GatewayHandler")

PERMISSION_PENDING: Final = "permission_pending"
MAX_PENDING: Final = 10_000  # per process; past it new requests expire at once (logged)

Expire = Callable[[str, str, str], Awaitable[object]]  # (request id, agent id, room id)


class PermissionBroker:
    def __init__(self, hub: Hub, on_expire: Expire, *, max_pending: int = MAX_PENDING) -> None:
        self._hub = hub
        self._on_expire = on_expire
        self._max_pending = max_pending
        self._heap: list[tuple[float, str, str, str]] = []
        self._scope = trio.CancelScope()

    def __len__(self) -> int:
        return len(self._heap)

    async def run(
        self, *, task_status: trio.TaskStatus[PermissionBroker] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Expire requests as their deadlines pass, until cancelled.

        Error policy: a failed expiry is logged and the next one runs.
        """
        self._hub.controls[PERMISSION_PENDING] = self._on_pending
        task_status.started(self)
        while True:
            with trio.CancelScope(deadline=self._next_deadline()) as self._scope:
                await trio.sleep_forever()
            for request_id, agent_id, room_id in self._pop_due(trio.current_time()):
                try:
                    await self._on_expire(request_id, agent_id, room_id)
                except Exception:
                    log.exception("Failed to expire permission request %s", request_id)

    def schedule(self, request_id: str, agent_id: str, room_id: str, delay_s: float) -> None:
        """Expire the request after `delay_s` (sync: called from hub controls)."""
        if len(self._heap) >= self._max_pending:
            log.warning("Too many pending permission requests (%d); %s expires now",
                        self._max_pending, request_id)  # fmt: skip
            delay_s = 0.0
        deadline = trio.current_time() + max(0.0, delay_s)
        heapq.heappush(self._heap, (deadline, request_id, agent_id, room_id))
        self._scope.deadline = min(self._scope.deadline, deadline)

    def _on_pending(self, hub: Hub, event: Event) -> None:
        if event.target_id != hub.process_id:
            return  # another process received the request and times it
        data = event.control or {}
        delay_s = (int(data["expiresAtMs"]) - time.time() * 1000) / 1000
        self.schedule(str(data["requestId"]), str(data["agentId"]), str(data["roomId"]), delay_s)

    def _next_deadline(self) -> float:
        return self._heap[0][0] if self._heap else math.inf

    def _pop_due(self, now: float) -> list[tuple[str, str, str]]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            _, request_id, agent_id, room_id = heapq.heappop(self._heap)
            due.append((request_id, agent_id, room_id))
        return due
