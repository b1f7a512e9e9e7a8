"""ServiceRuns: the owner of every service-agent reply this process is generating.

Each run is a task in one nursery (started from main), so shutdown cancels them with the tree;
a run is found by (agent, room) to be stopped (`client:stop_generation`, from any process
through a hub control event). Runs are bounded: past the bound a request is refused, not queued.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import httpx2
import trio

from agentim.routing.service_providers import new_provider_client

log = logging.getLogger("ServiceAgents")

# Each run holds one HTTP connection to a provider and one task; 32 at once is far more than a
# room's users read, and keeps a burst of @mentions from opening hundreds of provider calls.
MAX_ACTIVE_RUNS: Final = 32
HTTP_CLOSE_GRACE_S: Final = 2.0  # closing the provider client's pool at shutdown
STOP_SERVICE_AGENT: Final = "stop_service_agent"  # hub control action (actions/generation.py)

RunKey = tuple[str, str]  # (agent id, room id)
RunBody = Callable[[httpx2.AsyncClient, trio.CancelScope], Awaitable[None]]


class ServiceRuns:
    def __init__(self, *, max_active: int = MAX_ACTIVE_RUNS) -> None:
        self.max_active = max_active
        self._nursery: trio.Nursery | None = None
        self._http: httpx2.AsyncClient | None = None
        self._runs: dict[RunKey, set[trio.CancelScope]] = {}

    @property
    def http(self) -> httpx2.AsyncClient:
        """The provider client (only while running)."""
        if self._http is None:
            raise RuntimeError("service agents are not running")
        return self._http

    @property
    def active(self) -> int:
        return sum(len(scopes) for scopes in self._runs.values())

    async def run(
        self, *, allow_private: bool,
        task_status: trio.TaskStatus[ServiceRuns] = trio.TASK_STATUS_IGNORED,
    ) -> None:  # fmt: skip
        """Own the runs' nursery and the provider client until cancelled.

        Error policy: each run logs its own failure; nothing here is expected to raise.
        """
        http = new_provider_client(allow_private=allow_private)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery, self._http = nursery, http
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self._nursery = self._http = None
            with trio.move_on_after(HTTP_CLOSE_GRACE_S, shield=True):
                await http.aclose()

    def start(self, key: RunKey, body: RunBody, *, name: str) -> bool:
        """Start a run; never blocks. False when not running or at the bound (logged).

        `body` gets the provider client and its stop scope: cancelling the scope is a stop, so
        the body runs its provider call inside it and completes the reply after it.
        """
        if self._nursery is None or self._http is None:
            log.warning("Service agent %s not started: service agents are not running", key[0])
            return False
        if self.active >= self.max_active:
            log.warning("Service agent %s not started: %d replies already being generated",
                        key[0], self.max_active)  # fmt: skip
            return False
        self._nursery.start_soon(self._run, key, body, self._http, name=name)
        return True

    async def _run(self, key: RunKey, body: RunBody, http: httpx2.AsyncClient) -> None:
        scope = trio.CancelScope()
        self._runs.setdefault(key, set()).add(scope)
        try:
            await body(http, scope)
        except Exception:
            log.exception("Service agent %s failed in room %s", *key)
        finally:
            scopes = self._runs.get(key, set())
            scopes.discard(scope)
            if not scopes:
                self._runs.pop(key, None)

    def stop(self, agent_id: str, room_id: str) -> int:
        """Stop this process's runs of the agent in the room; returns how many."""
        scopes = self._runs.get((agent_id, room_id), set())
        for scope in scopes:
            scope.cancel()
        return len(scopes)
