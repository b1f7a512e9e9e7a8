"""A small trio-native RESP2 client for the hot Redis calls (STYLE §5.23).

Each call through the trio-asyncio bridge costs ~283 µs of CPU against ~51 µs over a plain trio
socket, so the hot calls (rate-limit counters, event publishing, get/set/delete) and the events
subscriber use this client; everything else stays on redis.asyncio.

URLs: `redis://[[user]:password@]host[:port][/db]`, `rediss://…` (TLS, default SSL context,
verified against the host name; `?ssl_cert_reqs=none` / `?ssl_ca_certs=<file>` as redis-py) and
`unix:///path/to/socket[?db=N][&password=…][&username=…]`. `redis+sentinel://` is not handled
here: sentinel deployments keep redis.asyncio for everything (see `kv.native_pool_for`).

Replies: bytes (bulk and simple strings), int, None (null), list (arrays), and a server error
reply is returned by `Parser.next` as a `RespError` value; `Connection.call` raises it.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
import trio

DEFAULT_PORT: Final = 6379
CONNECT_TIMEOUT_S: Final = 5.0  # connect + AUTH + SELECT (+ SUBSCRIBE) of one new connection
# The hot calls are one short round trip each (~50 µs of CPU), so a handful of connections keeps
# up with a whole process; callers beyond that wait for a free one (bounded by their timeout).
POOL_SIZE: Final = 8
# Bytes asked of the socket per read: below glibc's 128 KiB mmap threshold, so each read is a
# cheap heap allocation, and large enough to take hundreds of buffered events at once.
RECEIVE_BYTES: Final = 64 * 1024
DISCARD_TIMEOUT_S: Final = 1.0  # closing a broken connection (forcefully: it takes no I/O)
_CRLF: Final = b"\r\n"

Arg: TypeAlias = "bytes | str | int | float"
Reply: TypeAlias = "bytes | int | RespError | list[Reply] | None"


class RespError(Exception):
    """An error reply from the server (`-ERR …`), or a reply this client cannot parse."""


class RespProtocolError(RespError):
    """The byte stream is not RESP2; the connection cannot be used any further."""


class _Incomplete:
    """The type of `INCOMPLETE`."""

    def __repr__(self) -> str:
        return "INCOMPLETE"


INCOMPLETE: Final = _Incomplete()  # Parser.next(): the buffer holds no complete reply yet


class _NeedMore(Exception):
    """Raised inside the parser when the buffer ends mid-reply."""


def _encode_arg(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool) or not isinstance(arg, int | float):
        raise TypeError(f"cannot send {type(arg).__name__} to Redis")
    return repr(arg).encode()


def encode(*args: Arg) -> bytes:
    """One command as a RESP2 array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _encode_arg(arg)
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Parser:
    """Incremental RESP2 parser: `feed` bytes, then `next()` until it returns INCOMPLETE."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes | bytearray) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next(self) -> Reply | _Incomplete:
        """The next complete reply, or INCOMPLETE (nothing consumed) if the buffer ends first."""
        start = self._pos
        try:
            return self._reply()
        except _NeedMore:
            self._pos = start
            return INCOMPLETE

    def _line(self) -> bytes:
        end = self._buf.find(_CRLF, self._pos)
        if end < 0:
            raise _NeedMore
        line = bytes(self._buf[self._pos : end])
        self._pos = end + 2
        return line

    def _length(self, text: bytes) -> int:
        try:
            return int(text)
        except ValueError:
            raise RespProtocolError(f"bad length {text!r}") from None

    def _bulk(self, size: int) -> bytes:
        end = self._pos + size
        if len(self._buf) < end + 2:
            raise _NeedMore
        if self._buf[end : end + 2] != _CRLF:
            raise RespProtocolError("bulk string not terminated by CRLF")
        data = bytes(self._buf[self._pos : end])
        self._pos = end + 2
        return data

    def _reply(self) -> Reply:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = self._length(rest)
            return None if size < 0 else self._bulk(size)
        if kind == b"*":
            count = self._length(rest)
            return None if count < 0 else [self._reply() for _ in range(count)]
        if kind == b":":
            return self._length(rest)
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode(errors="replace"))
        raise RespProtocolError(f"unknown reply type {line[:20]!r}")


@attrs.frozen
class Target:
    """Where and how to connect, parsed from a URL."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix_path: str | None = None
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0


def _tls_context(query: dict[str, list[str]]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=query.get("ssl_ca_certs", [None])[0])
    if query.get("ssl_cert_reqs", ["required"])[0].lower() in ("none", "optional"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def parse_url(url: str) -> Target:
    """`redis://`, `rediss://` or `unix://` (ValueError for anything else)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    password = parts.password if parts.password is not None else query.get("password", [None])[0]
    username = parts.username if parts.username is not None else query.get("username", [None])[0]
    path_db = parts.path.strip("/") if parts.scheme != "unix" else ""
    db = int(path_db or query.get("db", ["0"])[0])
    user = unquote(username) if username else None
    secret = unquote(password) if password is not None else None
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("unix:// URL without a socket path")
        return Target(unix_path=parts.path, username=user, password=secret, db=db)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
    return Target(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or DEFAULT_PORT,
        tls=_tls_context(query) if parts.scheme == "rediss" else None,
        username=user,
        password=secret,
        db=db,
    )


async def _open_stream(target: Target) -> trio.abc.Stream:
    if target.unix_path is not None:
        return await trio.open_unix_socket(target.unix_path)
    tcp = await trio.open_tcp_stream(target.host, target.port)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)  # a dead peer ends a subscriber
    if target.tls is None:
        return tcp
    stream = trio.SSLStream(tcp, target.tls, server_hostname=target.host)
    try:
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


class Connection:
    """One Redis connection: a command, then its reply, one at a time."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._parser = Parser()

    @classmethod
    async def open(cls, url: str | Target) -> Connection:
        """Connect, AUTH and SELECT as the URL says, within CONNECT_TIMEOUT_S (TooSlowError)."""
        target = parse_url(url) if isinstance(url, str) else url
        with trio.fail_after(CONNECT_TIMEOUT_S):
            conn = cls(await _open_stream(target))
            try:
                await conn._handshake(target)
            except BaseException:
                await conn.aclose()
                raise
        return conn

    async def _handshake(self, target: Target) -> None:
        if target.password is not None:
            user = (target.username,) if target.username else ()
            await self.call("AUTH", *user, target.password)
        if target.db:
            await self.call("SELECT", target.db)

    async def send(self, *args: Arg) -> None:
        await self._stream.send_all(encode(*args))

    async def send_raw(self, data: bytes) -> None:
        """Encoded commands (see `encode`), several at once for a pipeline."""
        await self._stream.send_all(data)

    async def _receive(self) -> None:
        data = await self._stream.receive_some(RECEIVE_BYTES)
        if not data:
            raise trio.BrokenResourceError("Redis closed the connection")
        self._parser.feed(data)

    async def read_reply(self) -> Reply:
        while isinstance(reply := self._parser.next(), _Incomplete):
            await self._receive()
        return reply

    async def read_replies(self) -> list[Reply]:
        """Every complete reply in the buffer, reading from the socket once if there is none."""
        replies: list[Reply] = []
        while True:
            while not isinstance(reply := self._parser.next(), _Incomplete):
                replies.append(reply)
            if replies:
                return replies
            await self._receive()

    async def call(self, *args: Arg) -> Reply:
        """Send one command and return its reply; an error reply raises RespError."""
        await self.send(*args)
        reply = await self.read_reply()
        if isinstance(reply, RespError):
            raise reply
        return reply

    def peer_closed(self) -> bool:
        """Whether an idle connection has something to read: the server closed it (killed,
        restarted, CLIENT KILL), or it is out of step. One poll(2), no I/O. Not known for TLS
        (a TLS 1.3 server may send session tickets on an idle connection): False."""
        if not isinstance(self._stream, trio.SocketStream):
            return False
        poller = select.poll()
        poller.register(self._stream.socket.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    async def aclose(self) -> None:
        """Close at once: no goodbye is owed to Redis."""
        await trio.aclose_forcefully(self._stream)


class Pool:
    """At most `size` connections; a connection that failed mid-call is closed, never reused."""

    def __init__(self, url: str, *, size: int = POOL_SIZE) -> None:
        self.url = url
        self._target = parse_url(url)  # a bad URL fails now, not on the first call
        self._slots = trio.Semaphore(size)
        self._idle: list[Connection] = []
        self._open = 0
        self._closed = False

    @property
    def connections(self) -> int:
        """Connections open now, idle or in use."""
        return self._open

    async def _acquire(self) -> Connection:
        if self._closed:
            raise trio.ClosedResourceError("Redis pool closed")
        while self._idle:
            conn = self._idle.pop()
            if not conn.peer_closed():
                return conn
            # After a Redis restart: a fresh connection instead of a failed call (whose command
            # may have been carried out, for all the caller knows).
            await self._discard(conn)
        conn = await Connection.open(self._target)
        self._open += 1
        return conn

    async def _discard(self, conn: Connection) -> None:
        self._open -= 1
        await conn.aclose()

    async def call(self, *args: Arg) -> Reply:
        """One command on a pooled connection; error replies raise RespError."""
        (reply,) = await self.call_many([args])
        if isinstance(reply, RespError):
            raise reply
        return reply

    async def call_many(self, commands: Sequence[Sequence[Arg]]) -> list[Reply]:
        """Commands pipelined on one connection (one write, then every reply, in order).

        Error replies are returned, not raised: the others still ran.
        """
        async with self._slots:
            conn = await self._acquire()
            try:
                await conn.send_raw(b"".join(encode(*args) for args in commands))
                replies = [await conn.read_reply() for _ in commands]
            except BaseException:  # cancelled or broken mid-call: the stream is out of step
                with trio.move_on_after(DISCARD_TIMEOUT_S, shield=True):
                    await self._discard(conn)
                raise
            if self._closed:
                await self._discard(conn)
            else:
                self._idle.append(conn)
        return replies

    async def aclose(self) -> None:
        """Close idle connections now and busy ones when their call returns."""
        self._closed = True
        while self._idle:
            await self._discard(self._idle.pop())


StreamEntry: TypeAlias = "tuple[bytes, bytes]"  # (entry id, payload)


class Subscriber:
    """A connection in SUBSCRIBE mode; `receive_batch` returns message payloads in order."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *channels: str) -> AsyncIterator[Subscriber]:
        """Connect and subscribe (confirmed by the server); closed on exit."""
        conn = await Connection.open(url)
        try:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                await conn.send("SUBSCRIBE", *channels)
                for _ in channels:
                    _check_subscribed(await conn.read_reply())
            yield cls(conn)
        finally:
            await conn.aclose()

    async def receive_batch(self) -> list[bytes]:
        """Payloads of every complete message buffered, reading the socket once when none is.

        Raises trio.BrokenResourceError when Redis closes the connection, RespError on an
        error reply.
        """
        while True:
            payloads = [_message_payload(reply) for reply in await self._conn.read_replies()]
            batch = [p for p in payloads if p is not None]
            if batch:
                return batch


def _check_subscribed(reply: Reply) -> None:
    if isinstance(reply, RespError):
        raise reply
    if not (isinstance(reply, list) and reply and reply[0] == b"subscribe"):
        raise RespProtocolError(f"unexpected reply to SUBSCRIBE: {reply!r}")


def _message_payload(reply: Reply) -> bytes | None:
    """The payload of a `message` push; None for other pushes (subscribe confirmations)."""
    if isinstance(reply, RespError):
        raise reply
    if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
        payload = reply[2]
        if isinstance(payload, bytes):
            return payload
    return None


def stream_entries(reply: Reply, field: bytes) -> list[StreamEntry]:
    """`[[id, [field, value, ...]], ...]` → [(id, value of `field`)]; entries without it skipped."""
    if not isinstance(reply, list):
        raise RespProtocolError(f"unexpected stream reply: {reply!r:.100}")
    entries: list[StreamEntry] = []
    for item in reply:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], bytes)):
            raise RespProtocolError(f"unexpected stream entry: {item!r:.100}")
        fields = item[1]
        if isinstance(fields, list) and len(fields) >= 2 and fields[0] == field:
            value = fields[1]
            if isinstance(value, bytes):
                entries.append((item[0], value))
    return entries
