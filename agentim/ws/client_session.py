"""/ws/client: the frame pipeline of realtime.md §1.3 and the client:* handlers of §2.2.

Order per frame: size → JSON → depth/collection → schema → auth gate → rate limit → handler.
Every rejection is a `server:error` on this socket only; the socket stays open except where the
spec closes it (too many auth attempts, revocation, shutdown).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from agentim.actions import generation, permissions, presence, typing
from agentim.actions.messages import Draft, Sent, client_allowance, send_burst, send_one
from agentim.actions.relays import COMMAND_DENIED
from agentim.actions.routing import route_user_message
from agentim.auth.access import AccessProblem, AccessRefused, verify_access
from agentim.auth.tokens import Principal, digest
from agentim.errors import AgentImError, ErrorCode
from agentim.protocol import client as proto
from agentim.protocol.codec import CLIENT_MAX_COLLECTION, CLIENT_MAX_DEPTH, FrameError, parse_frame
from agentim.routing.hub import CLIENT
from agentim.services import Services
from agentim.store import users
from agentim.store.db import DbError
from agentim.store.kv import KvUnavailable
from agentim.store.membership import room_access
from agentim.ws import relays
from agentim.ws.session import Incoming, Session
from agentim.ws.transport import Binary, TooLarge

log = logging.getLogger("ClientHandler")
connections_log = logging.getLogger("Connections")

MAX_AUTH_ATTEMPTS: Final = 5  # per socket, never reset (realtime.md §1.2)
TOO_MANY_ATTEMPTS: Final = "Too many authentication attempts"
# realtime.md §1.2.2: the client:auth_result error for each refused token
AUTH_RESULT_TEXTS: Final = {
    AccessProblem.INVALID: "Invalid token",
    AccessProblem.WRONG_TYPE: "Invalid token type",
    AccessProblem.REVOKED: "Token revoked",
}
MEMBERSHIP_CACHE_S: Final = 60  # rm:<userId>:<roomId> (realtime.md §7.4)
_FRAME_ERRORS: Final = {
    FrameError.INVALID_JSON: (ErrorCode.INVALID_JSON, None),
    FrameError.TOO_DEEP: (ErrorCode.JSON_TOO_DEEP, proto.DEPTH_TEXT),
    FrameError.TOO_MANY_ITEMS: (ErrorCode.JSON_TOO_DEEP, proto.COLLECTION_TEXT),
    FrameError.NOT_AN_OBJECT: (ErrorCode.INVALID_MESSAGE, None),
    FrameError.UNSTORABLE_TEXT: (ErrorCode.INVALID_MESSAGE, None),
}
_UNLIMITED: Final = (proto.ClientAuth, proto.ClientPing)  # no auth gate, no rate limit


class ClientEndpoint:
    """One /ws/client socket's protocol state; the session calls `handle` for each frame."""

    __slots__ = ("auth_attempts", "services")

    def __init__(self, services: Services) -> None:
        self.services = services
        self.auth_attempts = 0

    async def handle(self, session: Session, raw: Incoming) -> None:
        await self.handle_batch(session, [raw])

    async def handle_batch(self, session: Session, raws: list[Incoming]) -> None:
        """Frames in order; a run of plain `client:send_message` frames is stored as a burst
        (one statement, one pipelined publish), still answered and broadcast in order."""
        burst: list[proto.ClientSendMessage] = []
        for raw in raws:
            decoded = self._decode(raw)
            if isinstance(decoded, proto.ClientSendMessage) and _burstable(session, decoded):
                burst.append(decoded)
                continue
            await self._send_burst(session, burst)
            burst = []
            if session.close_request is not None:
                return
            if isinstance(decoded, tuple):
                _error(session, *decoded)
            else:
                await self._dispatch(session, decoded)
        await self._send_burst(session, burst)

    async def _dispatch(self, session: Session, message: proto.ClientMessage) -> None:
        if not isinstance(message, _UNLIMITED):
            if not session.authenticated:
                _error(session, ErrorCode.NOT_AUTHENTICATED)
                return
            if await client_allowance(self.services, session.user_id, 1) < 1:
                _error(session, ErrorCode.RATE_LIMITED)
                return
        try:
            await HANDLERS[type(message)](self, session, message)
        except AgentImError as exc:
            _refused(session, exc)
        except Exception as exc:
            kind = _TYPES.get(type(message), "?")
            log.error("Error handling client message %s: %s", kind, exc, exc_info=True)
            _error(session, ErrorCode.INTERNAL_ERROR)

    def _decode(self, raw: Incoming) -> proto.ClientMessage | tuple[ErrorCode, str | None]:
        """The typed message, or the error code (and text) to answer the frame with."""
        if isinstance(raw, TooLarge):
            return ErrorCode.MESSAGE_TOO_LARGE, None
        if isinstance(raw, Binary):
            return ErrorCode.INVALID_JSON, None  # the reference parses "[object ArrayBuffer]"
        parsed = parse_frame(raw, max_depth=CLIENT_MAX_DEPTH, max_collection=CLIENT_MAX_COLLECTION)
        if isinstance(parsed, FrameError):
            return _FRAME_ERRORS[parsed]
        message = proto.decode_client(parsed, max_content=self.services.settings.max_message_length)
        if message is None:
            return ErrorCode.INVALID_MESSAGE, None
        return message

    async def _send_burst(self, session: Session, burst: list[proto.ClientSendMessage]) -> None:
        """Store and broadcast the messages the rate limit allows (actions.send_burst counts
        first); RATE_LIMITED for the rest, in order."""
        if not burst or session.close_request is not None:
            return
        drafts = [Draft(m.room_id, m.content, m.reply_to_id) for m in burst]
        try:
            kept, refused = await send_burst(
                self.services, user_id=session.user_id, username=session.username, drafts=drafts
            )
        except Exception as exc:
            kept, refused = _send_failed(exc, len(drafts)), 0
        for result in kept:
            if isinstance(result, AgentImError):
                _refused(session, result)
            else:
                await self._route(session, result)  # queues a hop; never waits
        for _ in range(refused):
            _error(session, ErrorCode.RATE_LIMITED)

    async def on_close(self, session: Session) -> None:
        """Typing stops in each joined room; presence goes offline after the grace period."""
        if not session.authenticated:
            return
        self._maybe_offline(session.user_id, session.username)
        if session.rooms:
            await typing.socket_left(
                self.services, session_id=session.id, user_id=session.user_id,
                username=session.username, room_ids=sorted(session.rooms),
            )  # fmt: skip

    def _maybe_offline(self, user_id: str, username: str) -> None:
        hub = self.services.hub
        if not hub.user_sessions(user_id, CLIENT):
            hub.start_timer(("presence", user_id), presence.OFFLINE_GRACE_S,
                            presence.user_offline, self.services, user_id, username)  # fmt: skip

    # client:auth ---------------------------------------------------------------------------
    async def authenticate(self, session: Session, message: proto.ClientAuth) -> None:
        """realtime.md §1.2.2: attempt counter → token → type → revocation → limits → success."""
        self.auth_attempts += 1
        if self.auth_attempts > MAX_AUTH_ATTEMPTS:
            session.send_json(proto.auth_result(error=TOO_MANY_ATTEMPTS))
            session.close_soon(1008, TOO_MANY_ATTEMPTS)
            return
        principal, problem = await self._check(session, message)
        if problem == proto.VERSION_CLOSE[1]:
            self._refuse_version(session, message.protocol_version or "")
            return
        if problem is not None or principal is None:
            session.send_json(proto.auth_result(error=problem))
            return
        previous = (session.user_id, session.username)
        first_here = not self.services.hub.user_sessions(principal.user_id, CLIENT)
        session.authenticate(principal.user_id, principal.username, digest(message.token))
        session.send_json(proto.auth_result(user_id=principal.user_id))
        if previous[0] and previous[0] != principal.user_id:
            self._maybe_offline(*previous)
        if first_here and not self.services.hub.cancel_timer(("presence", principal.user_id)):
            await presence.user_online(self.services, principal.user_id, principal.username)

    async def _check(
        self, session: Session, message: proto.ClientAuth
    ) -> tuple[Principal | None, str | None]:
        svc = self.services
        try:
            principal = await verify_access(svc.tokens, svc.kv, svc.db, message.token)
        except AccessRefused as exc:
            return None, AUTH_RESULT_TEXTS[exc.problem]
        except DbError as exc:  # neither Redis nor PostgreSQL answered: refuse (D23)
            log.warning("Client auth failed checking token revocation: %s", exc)
            return None, "Invalid token"
        if not proto.supported_version(message.protocol_version):  # 631a1ad checks it here
            return None, proto.VERSION_CLOSE[1]
        if session.user_id == principal.user_id:
            return principal, None  # same user again: limits unchanged (§1.2.4)
        try:
            row = await users.get_user(self.services.db, principal.user_id)
        except Exception as exc:
            log.warning("Client auth failed reading user %s: %s", principal.user_id, exc)
            return None, "Invalid token"
        return principal, self._limit_problem(session, principal.user_id, row)

    @staticmethod
    def _refuse_version(session: Session, version: str) -> None:
        """631a1ad: `server:error PROTOCOL_VERSION_MISMATCH`, then close 1008 (no auth_result)."""
        log.warning("Client protocol version mismatch: client=%s, server=%s", version,
                    proto.PROTOCOL_VERSION)  # fmt: skip
        session.close_soon(*proto.VERSION_CLOSE, error=proto.version_mismatch("client", version))

    def _limit_problem(self, session: Session, user_id: str, row: Any) -> str | None:
        settings, hub = self.services.live.current, self.services.hub
        override = row["max_ws_connections"] if row is not None else None
        per_user = override or settings.max_ws_connections_per_user
        if len(hub.user_sessions(user_id, CLIENT)) >= per_user:
            connections_log.warning("User %s exceeded max connections (%d)", user_id, per_user)
            return "Too many connections"
        if not session.authenticated and hub.count(CLIENT) >= settings.max_total_ws_connections:
            connections_log.warning(
                "Global connection limit reached (%d)", settings.max_total_ws_connections
            )
            return "Server at capacity"
        return None

    # the other client:* messages ----------------------------------------------------------
    async def ping(self, session: Session, message: proto.ClientPing) -> None:
        session.send_json(proto.pong(message.ts))

    async def join_room(self, session: Session, message: proto.ClientJoinRoom) -> None:
        access = await self._room_access(session.user_id, message.room_id)
        if access is None:
            _error(session, ErrorCode.ROOM_NOT_FOUND, "Room not found")
        elif access == "none":
            _error(session, ErrorCode.NOT_A_MEMBER, "You are not a member of this room")
        else:
            self.services.hub.join(session, message.room_id)  # silent success, idempotent
            # D17: permission requests still pending in the room survive a reconnect.
            for frame in await permissions.pending_permission_frames(
                self.services, message.room_id
            ):
                session.send_json(frame)

    async def _room_access(self, user_id: str, room_id: str) -> str | None:
        """The rm:<userId>:<roomId> cache, else the database (a missing room is not cached)."""
        kv, key = self.services.kv, f"rm:{user_id}:{room_id}"
        try:
            cached = await kv.get(key)
        except KvUnavailable:
            cached = None
        if cached in ("member", "creator", "none"):
            return cached
        access = await room_access(self.services.db, user_id, room_id)
        if access is not None:
            try:
                await kv.set(key, access, ex=MEMBERSHIP_CACHE_S)
            except KvUnavailable:
                pass
        return access

    async def leave_room(self, session: Session, message: proto.ClientLeaveRoom) -> None:
        self.services.hub.leave(session, message.room_id)

    async def send_message(self, session: Session, message: proto.ClientSendMessage) -> None:
        """A message with attachments (plain ones go through `_send_burst`)."""
        draft = Draft(message.room_id, message.content, message.reply_to_id,
                      message.attachment_ids)  # fmt: skip
        sent = await send_one(
            self.services, user_id=session.user_id, username=session.username, draft=draft
        )
        await self._route(session, sent)  # enqueues a hop; never waits on an LLM

    async def _route(self, session: Session, sent: Sent) -> None:
        """Route a stored, broadcast message to agents, unless the room's agentCommandRole is
        above the sender's role (B8: the message stays, the sender gets PERMISSION_DENIED)."""
        if not sent.may_command:
            _error(session, ErrorCode.PERMISSION_DENIED, COMMAND_DENIED)
            return
        await route_user_message(self.services, sent)

    async def typing(self, session: Session, message: proto.ClientTyping) -> None:
        if message.room_id in session.rooms:  # else silently ignored (§7.2)
            await typing.user_typing(
                self.services, session_id=session.id, user_id=session.user_id,
                username=session.username, room_id=message.room_id,
            )  # fmt: skip

    async def stop_generation(self, session: Session, message: proto.ClientStopGeneration) -> None:
        if message.room_id not in session.rooms:
            return  # failures are silent (§5.6)
        try:
            await generation.stop_generation(
                self.services, room_id=message.room_id, agent_id=message.agent_id
            )
        except Exception as exc:
            log.debug("stop_generation for agent %s failed: %s", message.agent_id, exc)

    async def permission_response(
        self, session: Session, message: proto.ClientPermissionResponse
    ) -> None:
        await permissions.answer_permission(
            self.services, session.user_id, message.request_id, message.decision,
            message.deny_reason,
        )  # fmt: skip


def _error(session: Session, code: ErrorCode, message: str | None = None) -> None:
    session.send_json(proto.server_error(code, message))


def _refused(session: Session, exc: AgentImError) -> None:
    """A handler's AgentImError as server:error (its text only when it carries a code)."""
    _error(session, exc.code or ErrorCode.INTERNAL_ERROR, exc.message if exc.code else None)


def _send_failed(exc: Exception, count: int) -> list[Sent | AgentImError]:
    """An unexpected failure of a burst: logged once, INTERNAL_ERROR for each message."""
    log.error("Error handling client message client:send_message: %s", exc, exc_info=True)
    return [AgentImError(500, "Internal error")] * count


def _burstable(session: Session, message: proto.ClientSendMessage) -> bool:
    return session.authenticated and not message.attachment_ids


Handler = Callable[[ClientEndpoint, Session, Any], Awaitable[None]]
HANDLERS: Final[dict[type[Any], Handler]] = {
    proto.ClientAuth: ClientEndpoint.authenticate,
    proto.ClientPing: ClientEndpoint.ping,
    proto.ClientJoinRoom: ClientEndpoint.join_room,
    proto.ClientLeaveRoom: ClientEndpoint.leave_room,
    proto.ClientSendMessage: ClientEndpoint.send_message,
    proto.ClientTyping: ClientEndpoint.typing,
    proto.ClientStopGeneration: ClientEndpoint.stop_generation,
    proto.ClientPermissionResponse: ClientEndpoint.permission_response,
    **relays.CLIENT_HANDLERS,  # client ↔ gateway relays (ws/relays.py)
}
_TYPES: Final = {
    proto.ClientAuth: "client:auth",
    proto.ClientPing: "client:ping",
    proto.ClientJoinRoom: "client:join_room",
    proto.ClientLeaveRoom: "client:leave_room",
    proto.ClientSendMessage: "client:send_message",
    proto.ClientTyping: "client:typing",
    proto.ClientStopGeneration: "client:stop_generation",
    proto.ClientPermissionResponse: "client:permission_response",
    **proto.relays.CLIENT_TYPES,
}
