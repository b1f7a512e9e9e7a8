"""Hub: this process's sockets, their rooms and agent bindings, and sync fan-out.

`deliver` never awaits: it queues encoded frames on each recipient's bounded outbox, so one
slow socket never holds up a room (STYLE §4.3). Only the pub/sub subscriber (or the D16
fallback) calls it, one event at a time, so every process sees a room's events in one order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Final, Protocol

import trio

from agentim.errors import ErrorCode
from agentim.protocol.events import Event, Target
from agentim.protocol.ids import new_id
from agentim.protocol.wsframes import text_frame
from agentim.routing.flush import Flusher

log = logging.getLogger("Connections")

CLIENT: Final = "client"
GATEWAY: Final = "gateway"
REVOKED_CLOSE: Final = (1008, "Session revoked")  # realtime.md §1.8
BARRIER: Final = "barrier"  # control action: a marker a process publishes to itself (barrier)


class LiveSession(Protocol):
    """What the hub needs of a socket session (ws/session.py implements it)."""

    id: str
    kind: str  # "client" | "gateway"
    user_id: str  # "" until authenticated
    username: str
    token_digest: str  # SHA-256 of the access token it authenticated with
    rooms: set[str]
    agents: set[str]
    finished: trio.Event  # set once its reader is done and the endpoint's on_close ran

    def send_nowait(self, frame: bytes, *, droppable: bool = False) -> bool: ...
    def is_repeat(self, key: str, frame: bytes) -> bool: ...
    def close_soon(
        self, code: int, reason: str, *, error: dict[str, str] | None = None
    ) -> None: ...


class KeepAlive(Protocol):
    """A session the shared keep-alive ticker pings (ws/session.py implements it)."""

    id: str

    def keepalive_tick(self) -> None: ...


ControlHandler = Callable[["Hub", Event], None]


class Hub:
    def __init__(self) -> None:
        self.process_id = new_id()  # names this process in shared Redis state (presence)
        self.sessions: dict[str, LiveSession] = {}  # authenticated
        self.pending: dict[str, LiveSession] = {}  # open, not (yet) authenticated
        self.by_user: dict[str, dict[str, LiveSession]] = {}
        self.rooms: dict[str, dict[str, LiveSession]] = {}
        self.agents: dict[str, str] = {}  # agent id → gateway session id
        # gateway id → the socket authenticated as it (a newer socket of the same id wins); the
        # Redis side of this map is `gw:proc:<gatewayId>` (actions/gateways.py keeps both)
        self.gateways: dict[str, LiveSession] = {}
        self.counts: dict[str, int] = {CLIENT: 0, GATEWAY: 0}
        self.controls: dict[str, ControlHandler] = {
            "revoke_user": _revoke_user,
            "revoke_token": _revoke_token,
            "room_removed": _room_removed,
            BARRIER: _barrier_reached,
        }
        self.closing = False
        self.nursery: trio.Nursery | None = None  # the hub's timers and background tasks
        self._timers: dict[Hashable, trio.CancelScope] = {}
        self._background: set[str] = set()
        self._keepalive: dict[float, dict[str, KeepAlive]] = {}  # interval → sessions
        self.flusher = Flusher()
        self._barriers: dict[str, trio.Event] = {}  # token → set when its marker is delivered

    async def run(self, *, task_status: trio.TaskStatus[Hub] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery of the hub's timers and background tasks until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self.flusher.run)
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self.nursery = None  # stopping: timers and background tasks are not started

    # registry -------------------------------------------------------------------------------
    def track(self, session: LiveSession) -> None:
        """A socket opened; shutdown reaches it even before it authenticates (D14)."""
        self.pending[session.id] = session
        if self.closing:
            session.close_soon(1001, "Server shutting down")

    def attach(self, session: LiveSession) -> None:
        """The session authenticated as `session.user_id`."""
        self.pending.pop(session.id, None)
        self.sessions[session.id] = session
        self.by_user.setdefault(session.user_id, {})[session.id] = session
        self.counts[session.kind] += 1

    def detach(self, session: LiveSession) -> None:
        """Forget the session (closed, or about to re-authenticate as someone else)."""
        self.pending.pop(session.id, None)
        if self.sessions.pop(session.id, None) is None:
            return
        self.counts[session.kind] -= 1
        _discard(self.by_user, session.user_id, session.id)
        for room_id in session.rooms:
            _discard(self.rooms, room_id, session.id)
        for agent_id in session.agents:
            if self.agents.get(agent_id) == session.id:
                del self.agents[agent_id]

    def join(self, session: LiveSession, room_id: str) -> None:
        session.rooms.add(room_id)
        self.rooms.setdefault(room_id, {})[session.id] = session

    def leave(self, session: LiveSession, room_id: str) -> None:
        session.rooms.discard(room_id)
        _discard(self.rooms, room_id, session.id)

    def bind_agent(self, session: LiveSession, agent_id: str) -> None:
        session.agents.add(agent_id)
        self.agents[agent_id] = session.id

    def add_gateway(self, gateway_id: str, session: LiveSession) -> list[str]:
        """The socket authenticated as this gateway (a newer socket of the same id wins).

        Returns:
            The other ids this socket held (it authenticated again under a new id): forgotten.
        """
        dropped = [i for i, s in self.gateways.items() if s is session and i != gateway_id]
        for old in dropped:
            del self.gateways[old]
        self.gateways[gateway_id] = session
        return dropped

    def remove_gateway(self, gateway_id: str, session: LiveSession) -> bool:
        """Forget the socket if it still holds the id; True if it did."""
        if self.gateways.get(gateway_id) is not session:
            return False
        del self.gateways[gateway_id]
        return True

    def count(self, kind: str) -> int:
        return self.counts.get(kind, 0)

    def user_sessions(self, user_id: str, kind: str | None = None) -> list[LiveSession]:
        found = self.by_user.get(user_id, {}).values()
        return [s for s in found if kind is None or s.kind == kind]

    # fan-out --------------------------------------------------------------------------------
    def deliver(self, event: Event) -> None:
        """Queue the event's frame on each local recipient; never awaits."""
        if event.target is Target.CONTROL:
            self._control(event)
            return
        recipients = self._recipients(event)
        if not recipients:
            return
        frame = text_frame(event.frame.encode())
        droppable, exclude, key = event.droppable, event.exclude, event.repeat_key
        for session in recipients:
            if session.id == exclude or (key is not None and session.is_repeat(key, frame)):
                continue
            session.send_nowait(frame, droppable=droppable)

    def _recipients(self, event: Event) -> list[LiveSession]:
        if event.target is Target.ROOM:
            return list(self.rooms.get(event.target_id, {}).values())
        if event.target is Target.USER:
            return self.user_sessions(event.target_id, CLIENT)
        if event.target is Target.AGENT:
            bound = self.sessions.get(self.agents.get(event.target_id, ""))
            return [bound] if bound is not None else []
        return [s for s in self.sessions.values() if s.kind == CLIENT]

    def _control(self, event: Event) -> None:
        action = (event.control or {}).get("action", "")
        handler = self.controls.get(action)
        if handler is None:
            log.debug("No handler for control event %s", action)
            return
        handler(self, event)

    def close_gateways(self, code: int, reason: str) -> list[LiveSession]:
        """Shutdown's first step (D14): every gateway socket closes, so its open streams are
        completed while the clients are still here to receive them; returns the sessions, whose
        `finished` tells when that is done. Sockets opened from now on are closed at once."""
        self.closing = True
        gateways = [s for s in [*self.sessions.values(), *self.pending.values()]
                    if s.kind == GATEWAY]  # fmt: skip
        for session in gateways:
            session.close_soon(code, reason)
        return gateways

    def close_all(self, code: int, reason: str, *, client_error: dict[str, str] | None) -> None:
        """Shutdown (D14): authenticated clients get the error frame first; all get `code`."""
        self.closing = True
        for session in [*self.sessions.values(), *self.pending.values()]:
            authenticated = session.kind == CLIENT and session.user_id
            session.close_soon(code, reason, error=client_error if authenticated else None)

    def expect_barrier(self, token: str) -> trio.Event:
        """An Event set when the control event `BARRIER` with this token reaches this process:
        everything published before it has then been delivered here (one channel, one order)."""
        return self._barriers.setdefault(token, trio.Event())

    def forget_barrier(self, token: str) -> None:
        self._barriers.pop(token, None)

    # timers and background tasks --------------------------------------------------------------
    def start_timer(
        self, key: Hashable, delay_s: float, fn: Callable[..., Awaitable[Any]], *args: Any
    ) -> None:
        """Run `fn(*args)` after `delay_s` unless `cancel_timer(key)` comes first."""
        self.cancel_timer(key)
        scope = trio.CancelScope()
        if self._spawn(self._fire, key, scope, delay_s, fn, *args):
            self._timers[key] = scope

    def cancel_timer(self, key: Hashable) -> bool:
        """Cancel a pending timer; True if there was one."""
        scope = self._timers.pop(key, None)
        if scope is None:
            return False
        scope.cancel()
        return True

    async def _fire(
        self, key: Hashable, scope: trio.CancelScope, delay_s: float,
        fn: Callable[..., Awaitable[Any]], *args: Any,
    ) -> None:  # fmt: skip
        """Error policy: the callee logs its own failures; anything else is logged here."""
        with scope:
            await trio.sleep(delay_s)
            if self._timers.get(key) is scope:
                del self._timers[key]
            try:
                await fn(*args)
            except Exception:
                log.exception("Timer %r failed", key)

    def keepalive_add(self, session: KeepAlive, interval_s: float) -> None:
        """Ping the session every `interval_s` from one shared ticker (a task per interval value,
        not per socket: an idle socket then costs no timer)."""
        members = self._keepalive.setdefault(interval_s, {})
        members[session.id] = session
        self.ensure_background(f"keepalive-{interval_s}", _keepalive_loop, interval_s, members)

    def keepalive_remove(self, session: KeepAlive) -> None:
        for members in self._keepalive.values():
            members.pop(session.id, None)

    def ensure_background(self, name: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start a process-wide task once (for instance the presence heartbeat)."""
        if name not in self._background and self._spawn(fn, *args):
            self._background.add(name)

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """Start a task in the hub's nursery; False once it is stopping (closed to new tasks,
        which sockets closing at shutdown can still run into)."""
        if self.nursery is None:
            return False
        try:
            self.nursery.start_soon(fn, *args)
        except RuntimeError:  # "Nursery is closed to new arrivals"
            self.nursery = None
            return False
        return True


async def _keepalive_loop(interval_s: float, members: dict[str, KeepAlive]) -> None:
    """Error policy: keepalive_tick is sync and never raises; nothing to catch."""
    while True:
        await trio.sleep(interval_s)
        for session in list(members.values()):
            session.keepalive_tick()


def _discard(index: dict[str, dict[str, LiveSession]], key: str, session_id: str) -> None:
    members = index.get(key)
    if members is not None:
        members.pop(session_id, None)
        if not members:
            del index[key]


def _revoke_user(hub: Hub, event: Event) -> None:
    """D7: the user's clients get SESSION_REVOKED then 1008; their gateways just 1008."""
    error = {"code": ErrorCode.SESSION_REVOKED.value, "message": "Session revoked"}
    for session in hub.user_sessions(event.target_id):
        session.close_soon(*REVOKED_CLOSE, error=error if session.kind == CLIENT else None)


def _revoke_token(hub: Hub, event: Event) -> None:
    """D23: a logout closes only the sockets that authenticated with the revoked token, as a
    revoked session (the user's other tabs, devices and gateways stay)."""
    token = str((event.control or {}).get("token", ""))
    error = {"code": ErrorCode.SESSION_REVOKED.value, "message": "Session revoked"}
    for session in hub.user_sessions(event.target_id):
        if token and session.token_digest == token:
            session.close_soon(*REVOKED_CLOSE, error=error if session.kind == CLIENT else None)


def _barrier_reached(hub: Hub, event: Event) -> None:
    """Another process's marker (or one nobody waits for any more) is ignored."""
    waiter = hub._barriers.pop(str((event.control or {}).get("token", "")), None)
    if waiter is not None:
        waiter.set()


def _room_removed(hub: Hub, event: Event) -> None:
    """realtime.md §7.5: every client socket of the user, joined or not, then unsubscribed."""
    control = event.control or {}
    room_id, text = str(control.get("roomId", "")), str(control.get("frame", ""))
    frame = text_frame(text.encode())
    for session in hub.user_sessions(event.target_id, CLIENT):
        session.send_nowait(frame)
        hub.leave(session, room_id)
