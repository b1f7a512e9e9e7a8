"""Session: one WebSocket's task tree (STYLE §4.1): the reader (the connection's own task) and,
only while frames are backed up, one writer, in one nursery; keep-alive pings come from the hub's
shared ticker.

Frames are written by `flush` (the hub's flusher calls it after each batch of events): one
non-blocking write of everything queued. Whatever the kernel does not take at once, and the close
sequence, go to `_write_loop`, a task started on demand that exits once the outbox is empty; the
socket is never written by two at a time (flush only writes while no writer runs). The transport
hands pongs and the close reply to the session, which queues them behind its outbox. The session
owns the auth deadline, the bounded outbox and the close sequence; an Endpoint (client or gateway)
decodes and handles frames, so both endpoints share this code and tests can run it over memory
streams. An idle session holds one task and no timers, so a thousand idle sockets stay cheap.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any, Final, Protocol

import attrs
import trio

from agentim.metrics import Metrics
from agentim.protocol.envelope import dumps
from agentim.protocol.ids import new_id
from agentim.protocol.wsframes import text_frame
from agentim.routing.hub import Hub
from agentim.routing.outbox import Outbox
from agentim.ws.transport import Binary, ConnectionClosed, TooLarge

log = logging.getLogger("Connections")

AUTH_TIMEOUT: Final = (4001, "Authentication timeout")  # realtime.md §1.6
PING_TIMEOUT: Final = (1001, "Ping timeout")
SLOW_CONSUMER: Final = (1013, "Slow consumer")
MISSED_PONGS_ALLOWED: Final = 1  # the second missed pong in a row closes (D1)
CLOSE_GRACE_S: Final = 2.0  # a closing session's in-flight handler and last writes get this long
CLEANUP_GRACE_S: Final = 2.0  # on_close (presence, typing) after the socket is gone
PING_FRAME: Final = b"\x89\x00"  # an unmasked FIN ping with no payload (RFC 6455 §5.5.2)

Incoming = str | Binary | TooLarge


class Transport(Protocol):
    """What a session needs of its connection (ws/transport.WsConnection)."""

    pongs: int  # pongs received so far
    on_control: Callable[[bytes], None] | None  # where the transport puts pongs to send
    close_reply: tuple[int, str] | None  # the close frame still owed to the peer

    async def receive(self) -> Incoming: ...
    async def receive_batch(self) -> list[Incoming]: ...
    async def send_frames(self, data: bytes) -> None: ...
    def fileno(self) -> int: ...
    async def close(self, code: int, reason: str = "") -> None: ...


class Endpoint(Protocol):
    """One endpoint's protocol: handles each incoming message, in order, in the reader."""

    async def handle(self, session: Session, message: Incoming) -> None: ...
    async def handle_batch(self, session: Session, messages: list[Incoming]) -> None:
        """Messages that arrived together, in order (an endpoint may store a burst at once)."""

    async def on_close(self, session: Session) -> None: ...


@attrs.frozen
class SessionLimits:
    auth_timeout_s: float
    ping_interval_s: float
    outbox_frames: int


class Session:
    """One socket (implements routing.hub.LiveSession and KeepAlive)."""

    __slots__ = (
        "_auth_scope",
        "_close_deadline",
        "_flush_queued",
        "_last_by_key",
        "_metrics",
        "_missed_pongs",
        "_nursery",
        "_pongs_at_ping",
        "_writing",
        "agents",
        "close_request",
        "conn",
        "dropped",
        "finished",
        "hub",
        "id",
        "kind",
        "limits",
        "outbox",
        "rooms",
        "token_digest",
        "user_id",
        "username",
    )  # fmt: skip

    def __init__(
        self, conn: Transport, hub: Hub, *, kind: str, limits: SessionLimits,
        metrics: Metrics | None = None,
    ) -> None:  # fmt: skip
        self.id = new_id()
        self.kind = kind
        self.user_id = ""
        self.username = ""
        self.token_digest = ""  # of the access token it authenticated with (D23 logout)
        self.rooms: set[str] = set()
        self.agents: set[str] = set()
        self.conn = conn
        self.hub = hub
        self.limits = limits
        self.outbox = Outbox(limits.outbox_frames)
        self._last_by_key: dict[str, int] = {}  # repeat key → hash of the last frame under it
        conn.on_control = self._queue_pong
        self._nursery: trio.Nursery | None = None  # the session's, while it runs
        self._writing = False  # a writer task runs (or the close sequence started)
        self._close_deadline = math.inf
        self.close_request: tuple[int, str] | None = None
        self.dropped = 0
        self._metrics = metrics
        self._auth_scope: trio.CancelScope | None = None
        self._pongs_at_ping: int | None = None  # conn.pongs when the last ping was queued
        self._missed_pongs = 0
        self._flush_queued = False
        self.finished = trio.Event()  # the reader is done and the endpoint's on_close ran

    @property
    def authenticated(self) -> bool:
        return bool(self.user_id)

    # what the hub and the endpoint call (sync) ------------------------------------------------
    def send_nowait(self, frame: bytes, *, droppable: bool = False) -> bool:
        """Queue an encoded frame; a full outbox drops a droppable frame, else closes us."""
        try:
            self.outbox.queue_nowait(frame)
        except trio.WouldBlock:
            if droppable:
                self.dropped += 1
                log.debug("Skipping low-priority frame for slow client %s (slowSendCount=%d)",
                          self.user_id, self.dropped)  # fmt: skip
            else:
                log.warning("Closing slow %s %s: %d frames queued", self.kind, self.user_id,
                            len(self.outbox))  # fmt: skip
                self.close_soon(*SLOW_CONSUMER)
            return False
        except trio.ClosedResourceError:
            return False
        if not self._flush_queued:
            self._flush_queued = True
            if not self.hub.flusher.add(self):
                self.flush()  # no flusher running (a bare hub in tests): now
        return True

    def flush(self) -> None:
        """Write what is queued straight to the socket (the flusher calls this); whatever the
        kernel does not take at once is left to a writer task."""
        self._flush_queued = False
        outbox = self.outbox
        if self._writing or not len(outbox):
            return  # a running writer takes what is queued
        fd = self.conn.fileno()
        if fd < 0:  # not a socket (memory streams in tests)
            self._start_writer()
            return
        frames = outbox.take()
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        try:
            sent = os.write(fd, data)
        except OSError:  # EAGAIN, or the peer is gone: the writer's send sorts it out
            sent = 0
        written = len(frames)
        if sent < len(data):
            outbox.put_back(data[sent:])
            written -= 1  # the writer counts the rest as one
            self._start_writer()
        if self._metrics is not None and written:
            self._metrics.ws_messages_total.inc(written, direction="out")

    def _start_writer(self) -> None:
        if self._writing or self._nursery is None:
            return
        try:
            self._nursery.start_soon(self._write_loop)
        except RuntimeError:
            # "closed to new arrivals": the session is ending (its nursery closed, run() has not
            # resumed yet); the socket is closed right after, so there is nothing left to write.
            self._nursery = None
            return
        self._writing = True

    def _queue_pong(self, frame: bytes) -> None:
        # droppable: a client flooding pings cannot grow the outbox past its bound
        self.send_nowait(frame, droppable=True)

    def send_json(self, message: dict[str, Any], *, repeat_key: str | None = None) -> bool:
        """Encode and queue a reply to this socket only (not when it repeats the last frame
        sent under `repeat_key`)."""
        frame = text_frame(dumps(message).encode())
        if repeat_key is not None and self.is_repeat(repeat_key, frame):
            return False
        return self.send_nowait(frame)

    def is_repeat(self, key: str, frame: bytes) -> bool:
        """Whether frame is the one this socket last got under key; remembers it if not."""
        digest = hash(frame)
        if self._last_by_key.get(key) == digest:
            return True
        self._last_by_key[key] = digest
        return False

    def close_soon(self, code: int, reason: str, *, error: dict[str, str] | None = None) -> None:
        """Send `error` (as server:error) after what is queued, then close with `code`.

        Bounded: after CLOSE_GRACE_S the session's nursery is cancelled, stuck peer or not.
        """
        if self.close_request is not None:
            return
        self.close_request = (code, reason)
        if error is not None:
            self.outbox.force_nowait(text_frame(dumps({"type": "server:error", **error}).encode()))
        self.outbox.close()
        self._close_deadline = min(self._close_deadline, trio.current_time() + CLOSE_GRACE_S)
        if self._nursery is not None:
            self._nursery.cancel_scope.deadline = self._close_deadline
            self._start_writer()  # it writes what is queued, then the close frame

    def authenticate(self, user_id: str, username: str, token_digest: str = "") -> None:
        """Bind the socket to a user (again); another user first loses this socket's rooms."""
        if self.user_id != user_id:
            self.hub.detach(self)
            self.rooms.clear()
            self.agents.clear()
            self.user_id = user_id
            self.hub.attach(self)
        self.username = username
        self.token_digest = token_digest
        if self._auth_scope is not None:
            self._auth_scope.deadline = math.inf  # the auth timer stops (realtime.md §1.2)

    def keepalive_tick(self) -> None:
        """Called by the hub's ticker every ping interval (D1): count a missed pong, then ping.

        The second unanswered ping in a row closes the socket.
        """
        if self._pongs_at_ping is not None:
            answered = self.conn.pongs > self._pongs_at_ping
            self._missed_pongs = 0 if answered else self._missed_pongs + 1
        if self._missed_pongs > MISSED_PONGS_ALLOWED:
            self.close_soon(*PING_TIMEOUT)
            return
        self._pongs_at_ping = self.conn.pongs
        self.send_nowait(PING_FRAME, droppable=True)

    # the task tree ---------------------------------------------------------------------------
    async def run(self, endpoint: Endpoint) -> None:
        """Serve the socket until either side closes it; the hub knows it meanwhile."""
        self.hub.track(self)
        self.hub.keepalive_add(self, self.limits.ping_interval_s)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.cancel_scope.deadline = self._close_deadline
                if self.close_request is not None or len(self.outbox):
                    self._start_writer()  # closed or written to before the nursery opened
                await self._read_loop(endpoint)
                if self.close_request is None and self.conn.close_reply is not None:
                    self.close_soon(*self.conn.close_reply)  # the peer closed, or broke RFC 6455
                if self.close_request is None:
                    nursery.cancel_scope.cancel()  # the connection is gone: nothing to write
                # else the writer sends what is queued and closes, within the deadline
        finally:
            self._nursery = None
            self.hub.keepalive_remove(self)
            self.hub.detach(self)
            self.outbox.close()
            try:
                with trio.move_on_after(CLEANUP_GRACE_S, shield=True):
                    await endpoint.on_close(self)
            finally:
                self.finished.set()  # shutdown waits for on_close, not for the peer's close reply
            with trio.move_on_after(CLOSE_GRACE_S, shield=True):
                await self.conn.close(*(self.close_request or (1000, "")))

    async def _read_loop(self, endpoint: Endpoint) -> None:
        """Frames in arrival order (D6); the first phase runs under the auth deadline.

        Error policy: the endpoint answers its own errors; a closed socket ends the loop.
        """
        with trio.move_on_after(self.limits.auth_timeout_s) as self._auth_scope:
            while not self.authenticated and self.close_request is None:
                try:
                    message = await self.conn.receive()
                except ConnectionClosed:
                    return
                await self._handle(endpoint, message)
        self._auth_scope = None
        if not self.authenticated:
            self.close_soon(*AUTH_TIMEOUT)  # the deadline passed (else we were closed)
            return
        while self.close_request is None:
            try:
                messages = await self.conn.receive_batch()
            except ConnectionClosed:
                return
            if self._metrics is not None:
                self._metrics.ws_messages_total.inc(len(messages), direction="in")
            await endpoint.handle_batch(self, messages)

    async def _handle(self, endpoint: Endpoint, message: Incoming) -> None:
        if self._metrics is not None:
            self._metrics.ws_messages_total.inc(direction="in")
        await endpoint.handle(self, message)

    async def _write_loop(self) -> None:
        """Write until the outbox is empty, then exit (flush writes directly again); once the
        session is closing, write what is left and close the connection.

        Error policy: a failed write means the peer is gone; stop and close the stream. Closing
        the stream also ends the reader's wait for the next frame.
        """
        try:
            while frames := self.outbox.take():
                await self.conn.send_frames(frames[0] if len(frames) == 1 else b"".join(frames))
                if self._metrics is not None:
                    self._metrics.ws_messages_total.inc(len(frames), direction="out")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.outbox.close()
        if not self.outbox.closed:
            self._writing = False  # caught up: the next flush writes directly
            return
        await self.conn.close(*(self.close_request or (1011, "")))
