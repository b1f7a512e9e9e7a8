"""/ws/gateway: the frame pipeline of realtime.md §1.3 (gateway column) and the gateway:* handlers.

A rejected frame is logged and dropped, never answered (the spec's gateway rule), and never
ends the connection. The session's reader hands frames over one at a time, so a gateway's
chunks reach the room in the order it sent them (D6; a run of chunks read together goes out in
one pipelined publish), and this endpoint's state (the gateway
id, agent names, open streams) is touched by one task only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

import trio

from agentim.actions import agents, busy, permissions
from agentim.actions.agents import Registration
from agentim.actions.routing import route_agent_message
from agentim.actions.tasks import apply_gateway_task_update
from agentim.auth.access import AccessProblem, AccessRefused, verify_access
from agentim.auth.tokens import Principal, digest
from agentim.errors import ErrorCode
from agentim.protocol import gateway as proto
from agentim.protocol.client import (
    PROTOCOL_VERSION,
    VERSION_CLOSE,
    pong,
    supported_version,
    version_mismatch,
)
from agentim.protocol.codec import GATEWAY_MAX_DEPTH, FrameError, parse_frame, parse_repairing
from agentim.protocol.events import Event
from agentim.protocol.storable import UNSTORABLE_TEXT
from agentim.routing.hub import GATEWAY, Hub
from agentim.routing.streams import Stream, StreamBuffers, StreamKey
from agentim.services import Services
from agentim.store import agents as agent_rows, tasks, users
from agentim.store.db import DbError
from agentim.ws import relays
from agentim.ws.session import Incoming, Session
from agentim.ws.transport import Binary, TooLarge

log = logging.getLogger("GatewayHandler")
connections_log = logging.getLogger("Connections")

MAX_OPEN_STREAMS: Final = 64  # per socket: concurrent replies of its agents that we buffer
STREAM_IDLE_S: Final = 600.0  # a stream silent this long is persisted as interrupted
# An agent's output may hold a NUL (a tool printed binary): its reply keeps everything else, with
# U+FFFD where PostgreSQL could not store a character (D25); other frames with such text drop.
REPAIRED_LOG: Final = "Gateway sent text PostgreSQL cannot store in %s for agent %s; kept as U+FFFD"
REPAIRED_TYPES: Final = frozenset({"gateway:message_chunk", "gateway:message_complete",
                                   "gateway:terminal_data"})  # fmt: skip
AUTH_FAILED: Final = "Authentication failed"
# realtime.md §1.2.3: the gateway:auth_result error for each refused token
AUTH_RESULT_TEXTS: Final = {
    AccessProblem.INVALID: AUTH_FAILED,
    AccessProblem.WRONG_TYPE: "Invalid token type",
    AccessProblem.REVOKED: "Token revoked",
}
NOT_AUTHENTICATED_CLOSE: Final = (1008, "Not authenticated")
_FRAME_LOGS: Final = {
    FrameError.INVALID_JSON: "Gateway sent invalid JSON, dropping message",
    FrameError.TOO_DEEP: "Gateway sent too deeply nested JSON, dropping message",
    FrameError.TOO_MANY_ITEMS: "Gateway sent too deeply nested JSON, dropping message",
    FrameError.NOT_AN_OBJECT: "Gateway sent invalid message format: Expected object",
    FrameError.UNSTORABLE_TEXT: f"Gateway sent invalid message format: {UNSTORABLE_TEXT}",
}
_PRE_AUTH: Final = (proto.GatewayAuth, proto.GatewayPing)


def too_large_text(limit: int) -> str:
    return f"Message exceeds maximum size ({limit} bytes)"


def stream_too_large_text(limit: int) -> str:
    """631a1ad's STREAM_TOO_LARGE text (its limit: 10 MB of chunk content, D20's too)."""
    return f"Stream total size exceeds maximum ({limit} bytes)"


class GatewayEndpoint:
    """One /ws/gateway socket's protocol state; the session calls `handle` for each frame."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.gateway_id = ""
        self.names: dict[str, str] = {}  # agent id → name, for the agents registered here
        self.streams = StreamBuffers(
            max_bytes=services.settings.max_agent_message_bytes, max_streams=MAX_OPEN_STREAMS
        )
        self._warned = WarnedStreams()  # streams whose bad chunk was logged (D25: once each)
        # What this socket last stored for each of its agents: AgentIM's gateway reports busy
        # before and online after every reply, and a completion sets the agent online itself,
        # so the repeated online (and an unchanged queue depth) costs no write at all.
        self._status: dict[str, str] = {}
        self._depth: dict[str, int] = {}
        # While a batch of frames is handled, relayed chunks collect here and go out in one
        # pipelined publish, before anything else this socket publishes (order kept, D6).
        self._relayed: list[Event] | None = None

    async def handle(self, session: Session, raw: Incoming) -> None:
        """Error policy: a handler's failure is logged; the socket and the hub carry on."""
        message = _decode(raw)
        if message is None:
            return
        if not isinstance(message, proto.GatewayMessageChunk):
            await self._publish_relayed()
        if not session.authenticated and not isinstance(message, _PRE_AUTH):
            # 631a1ad (head-gap E13): a valid frame other than auth or ping before auth ends
            # the socket; an invalid one was dropped above, as there.
            log.warning("Unauthenticated gateway attempted to send message, closing connection")
            session.close_soon(*NOT_AUTHENTICATED_CLOSE)
            return
        try:
            await HANDLERS[type(message)](self, session, message)
        except Exception as exc:
            log.error("Error handling gateway message %s: %s", proto.message_type(message), exc,
                      exc_info=True)  # fmt: skip

    async def handle_batch(self, session: Session, raws: list[Incoming]) -> None:
        """Frames in order; a run of chunks is relayed in one pipelined publish."""
        self._relayed = []
        try:
            for raw in raws:
                if session.close_request is not None:
                    break
                await self.handle(session, raw)
            await self._publish_relayed()
        finally:
            self._relayed = None

    async def _relay(self, event: Event) -> None:
        if self._relayed is None:
            await self.services.events.publish(event)
        else:
            self._relayed.append(event)

    async def _publish_relayed(self) -> None:
        if self._relayed:
            events, self._relayed = self._relayed, []
            await self.services.events.publish_all(events)

    async def on_close(self, session: Session) -> None:
        """Open streams are persisted; the agents still bound here go offline (§5.4). At
        shutdown this runs before the clients are closed, so they see the replies end (D14)."""
        if not session.authenticated:
            return
        hub = self.services.hub
        mine = sorted(a for a in session.agents if hub.agents.get(a) is None)  # not taken over
        reason = agents.SHUTDOWN_INTERRUPTED if hub.closing else agents.INTERRUPTED
        await agents.gateway_closed(
            self.services, user_id=session.user_id, gateway_id=self.gateway_id,
            session=session, agent_ids=mine, streams=self.streams.drain(),
            names=self.names, reason=reason,
        )  # fmt: skip
        await busy.forget_queue_depths(self.services, mine)

    # gateway:auth ----------------------------------------------------------------------------
    async def authenticate(self, session: Session, message: proto.GatewayAuth) -> None:
        """realtime.md §1.2.3: token → type → revocation → per-user limit → gateway row."""
        principal, problem = await self._check(session, message)
        if problem == VERSION_CLOSE[1]:
            version = message.protocol_version or ""
            log.warning("Gateway protocol version mismatch: gateway=%s, server=%s, gateway id %s",
                        version, PROTOCOL_VERSION, message.gateway_id)  # fmt: skip
            session.close_soon(*VERSION_CLOSE, error=version_mismatch("gateway", version))
            return
        if problem is not None or principal is None:
            session.send_json(proto.gateway_auth_result(problem or AUTH_FAILED))
            return
        if session.user_id and session.user_id != principal.user_id:
            await agents.agents_offline(self.services, sorted(session.agents))
        session.authenticate(principal.user_id, principal.username, digest(message.token))
        self.gateway_id = message.gateway_id
        # Bound everywhere before the gateway hears "ok", so a request right after finds it (an
        # id this socket held before is let go).
        await agents.gateway_authenticated(self.services, user_id=principal.user_id,
                                           gateway_id=self.gateway_id, session=session)  # fmt: skip
        session.send_json(proto.gateway_auth_result())

    async def _check(
        self, session: Session, message: proto.GatewayAuth
    ) -> tuple[Principal | None, str | None]:
        svc = self.services
        try:
            principal = await verify_access(svc.tokens, svc.kv, svc.db, message.token)
        except AccessRefused as exc:
            if exc.problem is AccessProblem.INVALID:
                log.warning("Gateway auth failed: %s", exc)  # the peer's mistake: not an error
            return None, AUTH_RESULT_TEXTS[exc.problem]
        except DbError as exc:  # neither Redis nor PostgreSQL answered: refuse (D23)
            log.error("Gateway auth failed: %s", exc)
            return None, AUTH_FAILED
        if not supported_version(message.protocol_version):  # before any row is written
            return None, VERSION_CLOSE[1]
        try:
            if session.user_id != principal.user_id and await self._over_limit(principal.user_id):
                return None, "Too many gateway connections"
            owned = await agents.connect_gateway(
                self.services, user_id=principal.user_id, gateway_id=message.gateway_id,
                device=message.device_info, ephemeral=message.ephemeral,
            )  # fmt: skip
        except Exception as exc:
            log.error("Gateway auth failed: %s", exc)
            return None, AUTH_FAILED
        return (principal, None) if owned else (None, "Gateway ID belongs to another user")

    async def _over_limit(self, user_id: str) -> bool:
        row = await users.get_user(self.services.db, user_id)
        override = row["max_gateways"] if row is not None else None
        limit = override or self.services.live.current.max_gateways_per_user
        if len(self.services.hub.user_sessions(user_id, GATEWAY)) < limit:
            return False
        connections_log.warning("User %s exceeded max gateways (%d)", user_id, limit)
        return True

    async def ping(self, session: Session, message: proto.GatewayPing) -> None:
        session.send_json(pong(message.ts))

    # agent lifecycle (realtime.md §5) --------------------------------------------------------
    async def register_agent(self, session: Session, message: proto.GatewayRegisterAgent) -> None:
        agent = message.agent
        self._forget(agent.id)
        outcome = await agents.register_agent(
            self.services, user_id=session.user_id, gateway_id=self.gateway_id,
            session_id=session.id, agent=agent,
            bind=partial(self._bind, session, agent.id, agent.name),
        )  # fmt: skip
        if outcome is Registration.DELETED:
            session.send_json(proto.remove_agent(agent.id))
        elif outcome is Registration.REGISTERED:
            await busy.forget_queue_depths(self.services, [agent.id])  # a fresh start

    def _bind(self, session: Session, agent_id: str, name: str) -> None:
        """This socket now holds the agent; another local socket that held it lets go."""
        hub = self.services.hub
        previous = hub.sessions.get(hub.agents.get(agent_id, ""))
        if previous is not None and previous is not session:
            previous.agents.discard(agent_id)
        hub.bind_agent(session, agent_id)
        self.names[agent_id] = name

    async def unregister_agent(
        self, session: Session, message: proto.GatewayUnregisterAgent
    ) -> None:
        agent_id = message.agent_id
        if agent_id not in session.agents:
            log.warning("Gateway attempted to unregister agent %s it does not own", agent_id)
            return
        unbind(self.services.hub, agent_id)
        self._forget(agent_id)
        await agents.agents_offline(self.services, [agent_id])
        await agents.agents_changed(self.services, session.user_id)
        await busy.forget_queue_depths(self.services, [agent_id])

    def _forget(self, agent_id: str) -> None:
        """The agent's stored status and depth are someone else's to tell from now on."""
        self._status.pop(agent_id, None)
        self._depth.pop(agent_id, None)

    async def agent_status(self, session: Session, message: proto.GatewayAgentStatus) -> None:
        if message.agent_id not in session.agents:
            log.warning("Gateway attempted to update status for unregistered agent %s",
                        message.agent_id)  # fmt: skip
            return
        agent_id, depth = message.agent_id, message.queue_depth
        if self._status.get(agent_id) != message.status:
            await agents.set_agent_status(self.services, agent_id, message.status)
            self._status[agent_id] = message.status
        if depth is not None and self._depth.get(agent_id) != depth:
            await busy.record_queue_depth(self.services, agent_id, depth)
            self._depth[agent_id] = depth

    # streaming (realtime.md §4) --------------------------------------------------------------
    async def message_chunk(self, session: Session, message: proto.GatewayMessageChunk) -> None:
        if message.agent_id not in session.agents:
            log.warning("Gateway attempted to send chunk for unowned agent %s", message.agent_id)
            return
        key: StreamKey = (message.agent_id, message.room_id, message.message_id)
        if message.chunk is None:
            self._drop_chunk(session, key, message)
            return
        if self.streams.is_ended(key):
            return  # ended over the size cap: the rest of it is dropped
        stream = self.streams.get(key)
        now = trio.current_time()
        if stream is None:
            await self._publish_relayed()  # idle streams may be ended (and published) below
            if not await agent_rows.is_agent_member(self.services.db, *key[:2]):
                log.warning("Agent %s is not a member of room %s, dropping chunk",
                            message.agent_id, message.room_id)  # fmt: skip
                return
            await self._end_idle_streams(now)
            stream = self.streams.open(key, now)  # None: too many open, relayed unbuffered
        if stream is not None and not self.streams.add(stream, message.chunk, now):
            await self._end_oversized(session, stream)
            return
        await self._relay(agents.chunk_event(
            room_id=message.room_id, agent_id=message.agent_id,
            agent_name=self._name(message.agent_id), message_id=message.message_id,
            chunk=message.chunk,
        ))  # fmt: skip

    def _drop_chunk(
        self, session: Session, key: StreamKey, message: proto.GatewayMessageChunk
    ) -> None:
        """D25: a chunk the hub cannot take is left out and the stream goes on; one warning per
        stream (a gateway repeating the bad chunk type does not flood the log)."""
        if message.too_large:
            text = f"Chunk exceeds maximum size ({proto.MAX_CHUNK_CHARS} characters)"
            session.send_json(proto.gateway_error(ErrorCode.CHUNK_TOO_LARGE.value, text))
        if self._warned.note(key):
            log.warning("Agent %s sent a chunk the hub cannot accept in reply %s, dropping it "
                        "(the stream goes on): %s", message.agent_id, message.message_id,
                        message.issue)  # fmt: skip

    async def _end_oversized(self, session: Session, stream: Stream) -> None:
        """Past the cap: an error chunk, the stream ends, what came so far is kept."""
        text = stream_too_large_text(self.streams.max_bytes)
        log.warning("Agent %s reply %s exceeds %d bytes, ending the stream", stream.agent_id,
                    stream.message_id, self.streams.max_bytes)  # fmt: skip
        self.streams.end(stream.key)
        name = self._name(stream.agent_id)
        await self._relay(agents.chunk_event(
            room_id=stream.room_id, agent_id=stream.agent_id, agent_name=name,
            message_id=stream.message_id, chunk={"type": "error", "content": text},
        ))  # fmt: skip
        await self._publish_relayed()
        await agents.interrupt_stream(self.services, stream, name, reason=text)
        session.send_json(proto.gateway_error(ErrorCode.STREAM_TOO_LARGE.value, text))

    async def _end_idle_streams(self, now: float) -> None:
        for stream in self.streams.idle(now, STREAM_IDLE_S):
            await agents.interrupt_stream(self.services, stream, self._name(stream.agent_id),
                                          reason=agents.IDLE_ENDED)  # fmt: skip

    async def message_complete(
        self, session: Session, message: proto.GatewayMessageComplete
    ) -> None:
        if message.agent_id not in session.agents:
            log.warning("Gateway attempted to complete message for unowned agent %s",
                        message.agent_id)  # fmt: skip
            return
        limit = self.services.settings.max_agent_message_bytes
        if len(message.full_content) > limit:
            session.send_json(proto.gateway_error(ErrorCode.MESSAGE_TOO_LARGE.value,
                                                  too_large_text(limit)))  # fmt: skip
            return
        key: StreamKey = (message.agent_id, message.room_id, message.message_id)
        if self.streams.is_ended(key):
            log.warning("Agent %s completed reply %s after it was ended, dropping",
                        message.agent_id, message.message_id)  # fmt: skip
            return
        stream = self.streams.pop(key)
        warned = self._warned.forget(key)  # a bad streamed chunk was logged already
        if message.dropped and (not warned or not message.routable):
            log.warning("Agent %s reply %s: left out what the hub cannot accept, storing the "
                        "rest%s: %s", message.agent_id, message.message_id,
                        "" if message.routable else " (not routed on)",
                        "; ".join(message.dropped))  # fmt: skip
        chunks = message.chunks if message.chunks is not None or stream is None else stream.chunks
        stored = await agents.complete_agent_message(
            self.services, room_id=message.room_id, agent_id=message.agent_id,
            agent_name=self._name(message.agent_id), message_id=message.message_id,
            content=message.full_content, chunks=chunks,
            started=stream.started if stream is not None else None,
            metadata=_target_metadata(message.target_agent_name),
        )  # fmt: skip
        if stored is not None:
            self._status[message.agent_id] = "online"  # the completion set it (and told rooms)
        if stored is not None and message.routable:  # §3.6 in the conversation's router
            route_agent_message(self.services, stored, conversation_id=message.conversation_id,
                                depth=message.depth)  # fmt: skip

    def _name(self, agent_id: str) -> str:
        return self.names.get(agent_id, agents.UNKNOWN_AGENT)

    # terminal, tasks, permissions (realtime.md §7.6-7.7, D17) --------------------------------
    async def terminal_data(self, session: Session, message: proto.GatewayTerminalData) -> None:
        if message.agent_id not in session.agents:
            log.warning("Gateway attempted to send terminal data for unowned agent %s",
                        message.agent_id)  # fmt: skip
            return
        await agents.relay_terminal_data(
            self.services, agent_id=message.agent_id, agent_name=self._name(message.agent_id),
            data=message.data,
        )  # fmt: skip

    async def task_update(self, session: Session, message: proto.GatewayTaskUpdate) -> None:
        if not session.agents:
            log.warning("Gateway with no registered agents attempted to update task")
            return
        task = await tasks.get_task(self.services.db, message.task_id)
        if task is None:
            log.warning("Task %s not found, ignoring update", message.task_id)
            return
        room_id = task["room_id"]
        if not await agent_rows.any_agent_member(self.services.db, sorted(session.agents),
                                                 room_id):  # fmt: skip
            log.warning("Gateway %s has no agents in room %s, rejecting task update",
                        self.gateway_id, room_id)  # fmt: skip
            return
        await apply_gateway_task_update(self.services, task_id=message.task_id,
                                        status=message.status, result=message.result)  # fmt: skip

    async def permission_request(
        self, session: Session, message: proto.GatewayPermissionRequest
    ) -> None:
        if message.agent_id not in session.agents:
            log.warning("Gateway attempted to request permission for unowned agent %s",
                        message.agent_id)  # fmt: skip
            return
        await permissions.request_permission(
            self.services, agent_name=self._name(message.agent_id), request=message
        )


def _target_metadata(target_agent_name: str | None) -> dict[str, Any] | None:
    """631a1ad: a reply addressed to one agent (its MCP send_message / request_reply tools)
    carries `{targetAgentName}`; routing reads it from there (actions/routing.py)."""
    return {"targetAgentName": target_agent_name} if target_agent_name else None


class WarnedStreams:
    """The streams of this socket whose dropped chunk was already logged; bounded, since a
    stream that never completes would otherwise stay here."""

    LIMIT: Final = 4 * MAX_OPEN_STREAMS

    def __init__(self) -> None:
        self._keys: dict[StreamKey, None] = {}

    def note(self, key: StreamKey) -> bool:
        """Remember the stream; True the first time (the caller logs then)."""
        if key in self._keys:
            return False
        if len(self._keys) >= self.LIMIT:
            self._keys.pop(next(iter(self._keys)))  # the oldest
        self._keys[key] = None
        return True

    def forget(self, key: StreamKey) -> bool:
        """The stream completed; True when it had been logged."""
        return self._keys.pop(key, False) is None


def _decode(raw: Incoming) -> proto.GatewayMessage | None:
    """The typed message, or None after logging why the frame is dropped (§1.3)."""
    if isinstance(raw, TooLarge):
        log.warning("Gateway sent oversized message (%d bytes), dropping", raw.size)
        return None
    if isinstance(raw, Binary):
        log.warning(_FRAME_LOGS[FrameError.INVALID_JSON])  # the reference parses "[object ...]"
        return None
    parsed = parse_frame(raw, max_depth=GATEWAY_MAX_DEPTH, max_collection=None)
    if parsed is FrameError.UNSTORABLE_TEXT:
        repaired = parse_repairing(raw, REPAIRED_TYPES)
        if repaired is not None:
            agent_id = repaired.get("agentId")
            log.warning(
                REPAIRED_LOG, repaired["type"], agent_id if isinstance(agent_id, str) else "?"
            )
            parsed = repaired
    if isinstance(parsed, FrameError):
        log.warning(_FRAME_LOGS[parsed])
        return None
    message = proto.decode_gateway(parsed, frame_chars=len(raw))
    if isinstance(message, proto.Invalid):
        log.warning("Gateway sent invalid message format: %s", message.issue)
        return None
    return message


# hub controls: bindings across processes -----------------------------------------------------
def install_controls(hub: Hub) -> None:
    """Register the gateway side's control handlers (called once per process by main)."""
    hub.controls[agents.AGENT_BOUND] = _agent_bound
    hub.controls[agents.AGENT_REMOVED] = _agent_removed


def unbind(hub: Hub, agent_id: str) -> None:
    """Forget the agent's local binding, on both the hub and its socket."""
    session = hub.sessions.get(hub.agents.pop(agent_id, ""))
    if session is not None:
        session.agents.discard(agent_id)


def _agent_bound(hub: Hub, event: Event) -> None:
    """The agent registered on some socket, maybe on another process: any other lets go."""
    current = hub.agents.get(event.target_id)
    if current is not None and current != (event.control or {}).get("sessionId"):
        unbind(hub, event.target_id)


def _agent_removed(hub: Hub, event: Event) -> None:
    """The agent was deleted: its gateway (already sent `server:remove_agent`) lets go."""
    agent_id, user_id = event.target_id, (event.control or {}).get("userId")
    session = hub.sessions.get(hub.agents.get(agent_id, ""))
    if session is None:
        return
    if session.user_id != user_id:
        connections_log.warning("Refused to unregister agent %s: gateway belongs to user %s, "
                                "not %s", agent_id, session.user_id, user_id)  # fmt: skip
        return
    unbind(hub, agent_id)


Handler = Callable[[GatewayEndpoint, Session, Any], Awaitable[None]]
HANDLERS: Final[dict[type[Any], Handler]] = {
    proto.GatewayAuth: GatewayEndpoint.authenticate,
    proto.GatewayPing: GatewayEndpoint.ping,
    proto.GatewayRegisterAgent: GatewayEndpoint.register_agent,
    proto.GatewayUnregisterAgent: GatewayEndpoint.unregister_agent,
    proto.GatewayAgentStatus: GatewayEndpoint.agent_status,
    proto.GatewayMessageChunk: GatewayEndpoint.message_chunk,
    proto.GatewayMessageComplete: GatewayEndpoint.message_complete,
    proto.GatewayTerminalData: GatewayEndpoint.terminal_data,
    proto.GatewayTaskUpdate: GatewayEndpoint.task_update,
    proto.GatewayPermissionRequest: GatewayEndpoint.permission_request,
    **relays.GATEWAY_HANDLERS,  # answers to client ↔ gateway relays (ws/relays.py)
}
