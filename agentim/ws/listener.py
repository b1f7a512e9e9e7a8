"""The hub's TCP listener (DIFFERENCES D22).

Each connection's HTTP/1.1 request head is read (bounded in size and time). A WebSocket upgrade
for /ws/client or /ws/gateway goes to our transport and session; any other request goes, with
the bytes already read replayed first, to hypercorn's HTTP connection handler serving the app.
hypercorn is pinned because TCPServer is an internal API; `HttpConnection` adds two things at
its edge: status lines carry their reason phrase, and a connection answered before the peer
finished sending its request body is closed the careful way (ReplayStream.aclose lingers).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from http import HTTPStatus
from typing import Any, Final

import attrs
import h11
import trio
from hypercorn.config import Config
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

from agentim.settings import SHUTDOWN_GRACE_S

log = logging.getLogger("Server")

MAX_HEAD_BYTES: Final = 16 * 1024
HEAD_TIMEOUT_S: Final = 10.0
WS_PATHS: Final = ("/ws/client", "/ws/gateway")
WS_REQUEST_START: Final = b"GET /ws/"
# An early answer (a 401 before an upload, say) leaves the peer still sending its body; closing
# with unread bytes makes the kernel send RST, and the peer sees a reset instead of the answer.
# So the rest is read and dropped first, within these bounds (like Apache's lingering close).
LINGER_S: Final = 5.0  # the whole drain; enough for the largest body (12 MiB) on a slow link
LINGER_MAX_BYTES: Final = 16 * 1024 * 1024  # above the largest body we accept (uploads, 12 MiB)
LINGER_READ_BYTES: Final = 64 * 1024


@attrs.frozen
class RequestHead:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes  # every byte read so far, head and anything after it

    @property
    def is_ws_upgrade(self) -> bool:
        return (
            self.method == "GET"
            and self.path in WS_PATHS
            and "websocket" in self.headers.get("upgrade", "").lower()
        )


def parse_head(raw: bytes) -> RequestHead | None:
    head, sep, _ = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return RequestHead("", "", {}, raw)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RequestHead(parts[0], parts[1].split("?", 1)[0], headers, raw)


class ReplayStream(trio.abc.HalfCloseableStream):
    """A SocketStream whose first reads return bytes we already consumed.

    A later request on the same keep-alive connection that upgrades to /ws/* is taken back from
    hypercorn (`hijacked`): hypercorn sees EOF and lets go, the socket stays open for our session.
    """

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix
        self.socket = stream.socket
        self.hijacked: RequestHead | None = None
        self.peer_mid_request: Callable[[], bool] = lambda: False  # set by the listener
        self._reading = trio.Lock()  # held by whoever reads the socket: hypercorn, or aclose
        self._read_scope = trio.CancelScope()
        self._drained: trio.Event | None = None  # set once a lingering close is over

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            await trio.lowlevel.checkpoint()
            return data
        if self.hijacked is not None or self._drained is not None:
            await trio.lowlevel.checkpoint()
            return b""
        async with self._reading:
            with trio.CancelScope() as self._read_scope:
                data = await self._stream.receive_some(max_bytes)
                if data.startswith(WS_REQUEST_START):
                    return await self._maybe_hijack(data)
                return data
        return b""  # aclose took the socket over to drain it: hypercorn sees EOF

    async def _maybe_hijack(self, data: bytes) -> bytes:
        head = parse_head(data)
        with trio.move_on_after(HEAD_TIMEOUT_S):
            while head is None and len(data) < MAX_HEAD_BYTES:
                more = await self._stream.receive_some(MAX_HEAD_BYTES)
                if not more:
                    break
                data += more
                head = parse_head(data)
        if head is not None and head.is_ws_upgrade:
            self.hijacked = head
            return b""
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        if self.hijacked is not None:
            return
        # Shielded: hypercorn closes a `Connection: close` response from the app's task, which
        # quart-trio cancels as the response ends; an unshielded checkpoint would skip the FIN.
        with trio.CancelScope(shield=True):
            await self._linger()  # first: many clients (Node's) stop sending once they see FIN
            await self._stream.send_eof()

    async def aclose(self) -> None:
        if self.hijacked is not None:
            return
        with trio.CancelScope(shield=True):
            await self._linger()
            await self._stream.aclose()

    async def _linger(self) -> None:
        """If the peer is still sending a request body, read and drop it (bounded), so it gets
        to read our answer (sent with `Connection: close`) and closes first.

        hypercorn calls this once its answer is written; its own reader may be waiting on the
        socket, so that read is cancelled (it sees EOF) and this one takes over. Whoever else
        wants to close meanwhile waits for the drain to end.
        """
        if self._drained is not None:
            await self._drained.wait()
            return
        if not self.peer_mid_request():
            return
        self._drained = trio.Event()
        self._read_scope.cancel()
        try:
            with trio.move_on_after(LINGER_S):
                async with self._reading:
                    await self._drain()
        finally:
            self._drained.set()

    async def _drain(self) -> None:
        drained = 0
        while drained < LINGER_MAX_BYTES:
            try:
                data = await self._stream.receive_some(LINGER_READ_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            if not data:
                return  # the peer read our answer and closed
            drained += len(data)


async def read_head(stream: trio.SocketStream) -> RequestHead | None:
    raw = b""
    with trio.move_on_after(HEAD_TIMEOUT_S):
        while len(raw) < MAX_HEAD_BYTES:
            chunk = await stream.receive_some(MAX_HEAD_BYTES)
            if not chunk:
                return None
            raw += chunk
            if (head := parse_head(raw)) is not None:
                return head
    return RequestHead("", "", {}, raw) if raw else None


def hypercorn_config() -> Config:
    config = Config()
    config.graceful_timeout = SHUTDOWN_GRACE_S
    config.keep_alive_timeout = 5
    config.include_server_header = False
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


class HttpConnection(TCPServer):
    """hypercorn's HTTP/1.1 connection handler, with reason phrases in status lines, and an
    answer sent while the peer is still sending its request body closes the connection (after
    a lingering drain, in ReplayStream)."""

    _wrapper: ProtocolWrapper | None = None

    @property  # type: ignore[override]
    def protocol(self) -> ProtocolWrapper:
        assert self._wrapper is not None
        return self._wrapper

    @protocol.setter
    def protocol(self, wrapper: ProtocolWrapper) -> None:
        # TCPServer.run assigns this once, before any byte is read or written.
        self._wrapper = wrapper
        if isinstance(wrapper.protocol, H11Protocol):
            _edit_responses(wrapper.protocol)

    def peer_mid_request(self) -> bool:
        """Whether the peer is still sending a request body we have not read."""
        inner = self._wrapper.protocol if self._wrapper is not None else None
        return isinstance(inner, H11Protocol) and _peer_mid_body(inner)


def _peer_mid_body(protocol: H11Protocol) -> bool:
    connection = protocol.connection
    return isinstance(connection, h11.Connection) and connection.their_state is h11.SEND_BODY


def _edit_responses(protocol: H11Protocol) -> None:
    """Every status line gets its reason phrase (`HTTP/1.1 401 Unauthorized`, not h11's default
    `HTTP/1.1 401 `), and an answer sent before the request body was read says
    `Connection: close`, so the peer closes once it has read it (we drain until then)."""
    send = protocol._send_h11_event

    async def edited(event: Any) -> None:
        if isinstance(event, h11.Response | h11.InformationalResponse) and not event.reason:
            event = dataclasses.replace(event, reason=reason_phrase(event.status_code))
        if isinstance(event, h11.Response) and _peer_mid_body(protocol):
            kept = [(k, v) for k, v in event.headers.raw_items() if k.lower() != b"connection"]
            event = h11.Response(
                status_code=event.status_code, headers=[*kept, (b"connection", b"close")],
                http_version=event.http_version, reason=event.reason,
            )  # fmt: skip
        await send(event)

    protocol._send_h11_event = edited  # type: ignore[method-assign]


def reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""  # a code without a registered phrase keeps the empty one (RFC 9112 allows it)


WsHandler = Callable[[trio.SocketStream, RequestHead], Awaitable[None]]


@attrs.define
class Listener:
    """Serve HTTP and WebSocket on one port until `shutdown` is set."""

    app: Any
    ws_handler: WsHandler
    host: str
    port: int
    on_shutdown: Callable[[], Awaitable[None]] = trio.lowlevel.checkpoint
    config: Config = attrs.field(factory=hypercorn_config)
    finished: trio.Event = attrs.field(factory=trio.Event)

    async def serve(  # noqa: ASYNC128 (_accept_until calls started)
        self, shutdown: trio.Event, *, task_status: trio.TaskStatus[list[str]]
    ) -> None:
        wrapped = wrap_app(self.app, self.config.wsgi_max_body_size, None)
        state: dict[str, Any] = {}
        lifespan = Lifespan(wrapped, self.config, state)
        context = WorkerContext(None)
        async with trio.open_nursery() as lifespan_nursery:
            await lifespan_nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            http = partial(HttpConnection, wrapped, self.config, context, ConnectionState(state))
            await self._accept_until(shutdown, http, context, task_status)
            with trio.move_on_after(SHUTDOWN_GRACE_S, shield=True):
                await lifespan.wait_for_shutdown()
            lifespan_nursery.cancel_scope.cancel()
        self.finished.set()

    async def _accept_until(
        self,
        shutdown: trio.Event,
        http: Any,
        context: WorkerContext,
        task_status: trio.TaskStatus[list[str]],
    ) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host or None)
        urls = [_url(listener) for listener in listeners]
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                handler = partial(self._handle, http)
                accepting.start_soon(
                    partial(trio.serve_listeners, handler, listeners, handler_nursery=connections)
                )
                task_status.started(urls)
                await shutdown.wait()
                accepting.cancel_scope.cancel()
            await self.on_shutdown()  # sessions say goodbye and close with 1001 (D14; bounded)
            await context.terminated.set()  # hypercorn closes idle keep-alive connections
            connections.cancel_scope.deadline = trio.current_time() + SHUTDOWN_GRACE_S

    async def _handle(self, http: Any, stream: trio.SocketStream) -> None:
        try:
            head = await read_head(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            head = None
        if head is None:
            with trio.move_on_after(1, shield=True):
                await stream.aclose()
            return
        if head.is_ws_upgrade:
            await self.ws_handler(stream, head)
            return
        replay = ReplayStream(stream, head.raw)
        connection: HttpConnection = http(replay)
        replay.peer_mid_request = connection.peer_mid_request
        await connection.run()
        if replay.hijacked is not None:  # a keep-alive connection asked to upgrade later
            await self.ws_handler(stream, replay.hijacked)


def _url(listener: trio.SocketListener) -> str:
    host, port = listener.socket.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
