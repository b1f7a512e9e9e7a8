"""WebSocket transport: the handshake on wsproto, then our own frame codec (RFC 6455 §5).

Server frames are unmasked and uncompressed, so one encoded frame serves every recipient
(DIFFERENCES D22). Client frames are parsed by `FrameReader`, a small pure decoder: cheaper per
frame than wsproto's event machinery and about 1.5 KiB smaller per idle socket. Senders
never write from the reader: control replies are queued for the session's one writer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

import attrs
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from agentim.protocol.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    frame,
)

RECEIVE_BYTES: Final = 65536
HARD_CAP_FACTOR: Final = 4  # beyond limit × this the peer is abusive: close 1009
CLOSE_GRACE_S: Final = 2.0
MAX_CONTROL_PAYLOAD: Final = 125  # RFC 6455 §5.5
_SEND_ERRORS: Final = (trio.BrokenResourceError, trio.ClosedResourceError)


class ConnectionClosed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


@attrs.frozen
class TooLarge:
    """A message over the size limit: its content was discarded."""

    size: int


@attrs.frozen
class Binary:
    data: bytes


@attrs.frozen
class PingFrame:
    payload: bytes


@attrs.frozen
class PongFrame:
    pass


@attrs.frozen
class CloseFrame:
    code: int  # 1005 when the peer sent no status code
    reason: str


@attrs.frozen
class ProtocolError:
    """The peer broke RFC 6455; we close with `code`."""

    code: int
    reason: str


Incoming = str | Binary | TooLarge
FrameEvent = Incoming | PingFrame | PongFrame | CloseFrame | ProtocolError
PONG: Final = PongFrame()


def close_frame(code: int, reason: str = "") -> bytes:
    payload = struct.pack("!H", code) + reason.encode()[: MAX_CONTROL_PAYLOAD - 2]
    return frame(OP_CLOSE, payload)


def unmask(payload: bytes | bytearray, mask: bytes) -> bytes:
    """XOR with the 4-byte key, as one big-integer operation (C speed, no Python loop)."""
    length = len(payload)
    if not length:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(length, "little")


def _valid_close_code(code: int) -> bool:
    """Codes a peer may send (RFC 6455 §7.4): not the reserved or never-sent ones."""
    if code in (1004, 1005, 1006, 1015):
        return False
    return 1000 <= code <= 1014 or 3000 <= code <= 4999


class FrameReader:
    """Client → server frames: masked, no extensions; messages reassembled under a size cap.

    Pure: `feed` bytes, get events. A message over `max_message_bytes` is skipped as it
    arrives (never buffered) and reported as TooLarge; past HARD_CAP_FACTOR × the cap the
    peer is abusive (1009).
    """

    __slots__ = ("_buf", "_kind", "_max", "_parts", "_size", "_skip", "_skip_fin", "done")

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        self._buf = bytearray()
        self._kind: int | None = None  # opcode of the data message being assembled
        self._parts: list[bytes] = []
        self._size = 0
        self._skip = 0  # payload bytes of an oversized message still to drop
        self._skip_fin = False
        self.done = False  # a close or protocol error was seen: nothing more is parsed

    def feed(self, data: bytes | bytearray) -> list[FrameEvent]:
        self._buf += data
        events: list[FrameEvent] = []
        while not self.done and self._step(events):
            pass
        return events

    def _step(self, events: list[FrameEvent]) -> bool:
        """Consume at most one frame (or a slice of a skipped one); False: need more bytes."""
        if self._skip:
            return self._drop(events)
        head = self._header()
        if head is None:
            return False
        if isinstance(head, ProtocolError):
            return self._fail(events, head)
        fin, opcode, length, start = head
        if opcode & 0x8:
            return self._control(events, opcode, length, start)
        return self._data(events, fin, opcode, length, start)

    def _header(self) -> tuple[bool, int, int, int] | ProtocolError | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        fin, opcode, length = bool(buf[0] & 0x80), buf[0] & 0x0F, buf[1] & 0x7F
        start = 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, start = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, start = int.from_bytes(buf[2:10], "big"), 10
        if buf[0] & 0x70 or not buf[1] & 0x80:
            return ProtocolError(1002, "Unmasked frame or reserved bits set")
        if opcode & 0x8:
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG) or not fin:
                return ProtocolError(1002, "Invalid control frame")
            if length > MAX_CONTROL_PAYLOAD:
                return ProtocolError(1002, "Control frame too long")
        elif opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
            return ProtocolError(1002, "Unknown opcode")
        elif (opcode == OP_CONTINUATION) != (self._kind is not None):
            return ProtocolError(1002, "Unexpected continuation state")
        return fin, opcode, length, start + 4  # the mask follows the length

    def _payload(self, length: int, start: int) -> bytes | None:
        """The unmasked payload of a frame whose header ends at `start`, consumed; or None."""
        if len(self._buf) < start + length:
            return None
        payload = unmask(self._buf[start : start + length], bytes(self._buf[start - 4 : start]))
        del self._buf[: start + length]
        return payload

    def _control(self, events: list[FrameEvent], opcode: int, length: int, start: int) -> bool:
        payload = self._payload(length, start)
        if payload is None:
            return False
        if opcode == OP_PING:
            events.append(PingFrame(payload))
        elif opcode == OP_PONG:
            events.append(PONG)
        else:
            events.append(_close_event(payload))
            self.done = True
        return True

    def _data(
        self, events: list[FrameEvent], fin: bool, opcode: int, length: int, start: int
    ) -> bool:
        size = self._size + length
        if size > self._max * HARD_CAP_FACTOR:
            return self._fail(events, ProtocolError(1009, "Message too big"))
        if size > self._max:  # drop it as it arrives
            if len(self._buf) < start:
                return False
            del self._buf[:start]
            self._kind = self._kind if self._kind is not None else opcode
            self._parts, self._size, self._skip, self._skip_fin = [], size, length, fin
            return self._drop(events) or True
        payload = self._payload(length, start)
        if payload is None:
            return False
        self._kind = self._kind if self._kind is not None else opcode
        self._parts.append(payload)
        self._size = size
        if fin:
            self._finish(events)
        return True

    def _drop(self, events: list[FrameEvent]) -> bool:
        count = min(self._skip, len(self._buf))
        del self._buf[:count]
        self._skip -= count
        if self._skip:
            return False
        if self._skip_fin:
            events.append(TooLarge(self._size))
            self._reset()
        return True

    def _finish(self, events: list[FrameEvent]) -> None:
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        kind, size = self._kind, self._size
        self._reset()
        if size > self._max:
            events.append(TooLarge(size))
        elif kind == OP_BINARY:
            events.append(Binary(data))
        else:
            try:
                events.append(data.decode())
            except UnicodeDecodeError:
                self._fail(events, ProtocolError(1007, "Invalid UTF-8"))

    def _reset(self) -> None:
        self._kind, self._parts, self._size, self._skip, self._skip_fin = None, [], 0, 0, False

    def _fail(self, events: list[FrameEvent], error: ProtocolError) -> bool:
        events.append(error)
        self.done = True
        return False


def _close_event(payload: bytes) -> CloseFrame | ProtocolError:
    if not payload:
        return CloseFrame(1005, "")
    if len(payload) < 2:
        return ProtocolError(1002, "Invalid close frame")
    code = int.from_bytes(payload[:2], "big")
    if not _valid_close_code(code):
        return ProtocolError(1002, "Invalid close code")
    try:
        return CloseFrame(code, payload[2:].decode())
    except UnicodeDecodeError:
        return ProtocolError(1007, "Invalid UTF-8")


class WsConnection:
    """An accepted WebSocket over a trio stream (a socket, or memory streams in tests).

    `receive` never writes: the pong for a ping goes to `on_control` (the session queues it
    behind its outbox), and the close frame still owed to the peer (the echo of its close, or
    ours for a protocol error) is left in `close_reply` for the owner's writer. So one task
    writes the socket and no lock is needed.
    """

    __slots__ = (
        "_close_sent", "_early", "_pending", "_reader", "_stream", "close_reply", "closed",
        "on_control", "pongs",
    )  # fmt: skip

    def __init__(
        self, stream: trio.abc.Stream, *, max_message_bytes: int, buffered: bytes = b""
    ) -> None:
        self._stream = stream
        self._reader = FrameReader(max_message_bytes)
        self._pending: list[Incoming] = []
        self._close_sent = False
        self._early = buffered  # frame bytes that arrived right behind the request head
        self.closed: ConnectionClosed | None = None
        self.close_reply: tuple[int, str] | None = None
        self.on_control: Callable[[bytes], None] | None = None
        self.pongs = 0  # the session's keep-alive compares counts (no Event per socket)

    async def send_frames(self, data: bytes) -> None:
        """Write already-encoded frames (one or many, concatenated). One writer only."""
        await self._stream.send_all(data)

    def fileno(self) -> int:
        """The socket's descriptor for a direct non-blocking write, or -1 (not a socket, or
        closed). Asked at each write: a closed socket's number may belong to another by then."""
        sock = getattr(self._stream, "socket", None)
        return sock.fileno() if sock is not None else -1

    async def receive(self) -> Incoming:
        """The next whole message; raises ConnectionClosed when the peer is gone or closing."""
        await self._fill()
        return self._pending.pop(0)

    async def receive_batch(self) -> list[Incoming]:
        """Every whole message already received (at least one), in order; raises as `receive`."""
        await self._fill()
        batch, self._pending = self._pending, []
        return batch

    async def _fill(self) -> None:
        while not self._pending:
            if self.closed is not None:
                raise self.closed
            try:
                data = self._early or await self._stream.receive_some(RECEIVE_BYTES)
                self._early = b""
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.closed = self.closed or ConnectionClosed(1006, "connection lost")
                raise self.closed from exc
            if not data:
                self.closed = self.closed or ConnectionClosed(1006, "connection lost")
                raise self.closed
            self._handle(self._reader.feed(data))

    def _handle(self, events: list[FrameEvent]) -> None:
        for event in events:
            if isinstance(event, str | Binary | TooLarge):
                self._pending.append(event)
            elif isinstance(event, PingFrame):
                if self.on_control is not None:
                    self.on_control(frame(OP_PONG, event.payload))
            elif isinstance(event, PongFrame):
                self.pongs += 1
            elif isinstance(event, CloseFrame):
                self.closed = self.closed or ConnectionClosed(event.code, event.reason)
                self.close_reply = (1000 if event.code == 1005 else event.code, "")
            else:
                self.closed = self.closed or ConnectionClosed(event.code, event.reason)
                self.close_reply = (event.code, event.reason)

    async def close(self, code: int, reason: str = "") -> None:
        """Send the close frame if none was sent (bounded, shielded) and close the stream."""
        if self.closed is None:
            self.closed = ConnectionClosed(code, reason)
        if not self._close_sent:
            self._close_sent = True
            with trio.move_on_after(CLOSE_GRACE_S, shield=True):
                try:
                    await self._stream.send_all(close_frame(code, reason))
                except _SEND_ERRORS:
                    pass  # the peer is gone already
        with trio.move_on_after(CLOSE_GRACE_S, shield=True):
            await self._stream.aclose()


async def accept(
    stream: trio.abc.Stream, head: bytes, *, max_message_bytes: int
) -> WsConnection | None:
    """Complete the server handshake for a request whose head we already read."""
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.receive_data(head)
        request = next((e for e in ws.events() if isinstance(e, Request)), None)
    except RemoteProtocolError:
        request = None
    if request is None:
        await stream.send_all(_reject(ws))
        return None
    await stream.send_all(ws.send(AcceptConnection()))
    buffered = head.partition(b"\r\n\r\n")[2]
    return WsConnection(stream, max_message_bytes=max_message_bytes, buffered=buffered)


def _reject(ws: WSConnection) -> bytes:
    try:
        return ws.send(RejectConnection(status_code=400))
    except LocalProtocolError:
        return b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
