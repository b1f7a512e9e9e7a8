"""Hub: this process's sockets, their rooms and agent bindings, and sync fan-out.

`deliver` never awaits: it queues encoded frames on each recipient's bounded outbox, so one
slow socket never holds up a room (STYLE §4.3). Only the pub/sub subscriber (or the D16
fallback) calls it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

import trio

from agentim.protocol.events import Event, Target
from agentim.ws.transport import text_frame

log = logging.getLogger("Connections")


class LiveSession(Protocol):
    """What the hub needs of a socket session (ws/session.py implements it)."""

    id: str
    kind: str  # "client" | "gateway"
    user_id: str
    rooms: set[str]
    agents: set[str]

    def send_nowait(self, frame: bytes, *, droppable: bool) -> None: ...
    def close_soon(
        self, code: int, reason: str, *, error: dict[str, str] | None = None
    ) -> None: ...


ControlHandler = Callable[["Hub", Event], None]


class Hub:
    def __init__(self) -> None:
        self.sessions: dict[str, LiveSession] = {}
        self.by_user: dict[str, set[str]] = defaultdict(set)
        self.rooms: dict[str, set[str]] = defaultdict(set)
        self.agents: dict[str, str] = {}  # agent id → gateway session id
        self.controls: dict[str, ControlHandler] = {}
        self.conversations: trio.Nursery | None = None
        self.delivered = 0

    async def run(self, *, task_status: trio.TaskStatus[Hub] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the conversations nursery until cancelled."""
        async with trio.open_nursery() as nursery:
            self.conversations = nursery
            task_status.started(self)
            await trio.sleep_forever()

    # registry -------------------------------------------------------------------------------
    def attach(self, session: LiveSession) -> None:
        self.sessions[session.id] = session
        self.by_user[session.user_id].add(session.id)

    def detach(self, session: LiveSession) -> None:
        self.sessions.pop(session.id, None)
        self._discard(self.by_user, session.user_id, session.id)
        for room_id in session.rooms:
            self._discard(self.rooms, room_id, session.id)
        for agent_id in session.agents:
            if self.agents.get(agent_id) == session.id:
                del self.agents[agent_id]

    def join(self, session: LiveSession, room_id: str) -> None:
        session.rooms.add(room_id)
        self.rooms[room_id].add(session.id)

    def leave(self, session: LiveSession, room_id: str) -> None:
        session.rooms.discard(room_id)
        self._discard(self.rooms, room_id, session.id)

    def bind_agent(self, session: LiveSession, agent_id: str) -> None:
        session.agents.add(agent_id)
        self.agents[agent_id] = session.id

    @staticmethod
    def _discard(index: dict[str, set[str]], key: str, session_id: str) -> None:
        members = index.get(key)
        if members is not None:
            members.discard(session_id)
            if not members:
                del index[key]

    def count(self, kind: str) -> int:
        return sum(1 for s in self.sessions.values() if s.kind == kind)

    def user_sessions(self, user_id: str, kind: str | None = None) -> list[LiveSession]:
        found = (self.sessions[sid] for sid in self.by_user.get(user_id, ()))
        return [s for s in found if kind is None or s.kind == kind]

    # fan-out --------------------------------------------------------------------------------
    def deliver(self, event: Event) -> None:
        if event.target is Target.CONTROL:
            self._control(event)
            return
        frame = text_frame(event.frame.encode())
        for session in self._recipients(event):
            if session.id != event.exclude:
                session.send_nowait(frame, droppable=event.droppable)
                self.delivered += 1

    def _recipients(self, event: Event) -> list[LiveSession]:
        if event.target is Target.ROOM:
            ids = self.rooms.get(event.target_id, ())
        elif event.target is Target.USER:
            ids = {s for s in self.by_user.get(event.target_id, ()) if self._is_client(s)}
        elif event.target is Target.AGENT:
            bound = self.agents.get(event.target_id)
            ids = {bound} if bound else set()
        else:
            ids = {sid for sid, s in self.sessions.items() if s.kind == "client"}
        return [self.sessions[sid] for sid in list(ids) if sid in self.sessions]

    def _is_client(self, session_id: str) -> bool:
        session = self.sessions.get(session_id)
        return session is not None and session.kind == "client"

    def _control(self, event: Event) -> None:
        action = (event.control or {}).get("action", "")
        handler = self.controls.get(action)
        if handler is None:
            log.debug("No handler for control event %s", action)
            return
        handler(self, event)

    def close_all(self, code: int, reason: str, *, client_error: dict[str, str] | None) -> None:
        """Shutdown (D14): clients get the error frame first; everyone gets `code`."""
        for session in list(self.sessions.values()):
            error = client_error if session.kind == "client" else None
            session.close_soon(code, reason, error=error)
