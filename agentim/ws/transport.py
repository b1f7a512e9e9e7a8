"""WebSocket transport on wsproto: handshake, message reassembly with a size cap, frames.

Server frames are unmasked and uncompressed, so one encoded frame serves every recipient
(DECISIONS D22). Senders serialise on one StrictFIFOLock; the session's writer is the main one.
"""

from __future__ import annotations

import struct
from typing import Final

import attrs
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason

RECEIVE_BYTES: Final = 65536
HARD_CAP_FACTOR: Final = 4  # beyond limit × this the peer is abusive: close 1009
CLOSE_GRACE_S: Final = 2.0


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


def text_frame(payload: bytes) -> bytes:
    """One unmasked FIN text frame (RFC 6455 §5.2)."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return b"\x81\x7e" + struct.pack("!H", length) + payload
    return b"\x81\x7f" + struct.pack("!Q", length) + payload


class WsConnection:
    """An accepted WebSocket over a trio stream."""

    def __init__(
        self, stream: trio.abc.Stream, ws: WSConnection, *, max_message_bytes: int
    ) -> None:
        self._stream = stream
        self._ws = ws
        self._max = max_message_bytes
        self._send_lock = trio.StrictFIFOLock()
        self._parts: list[str | bytes] = []
        self._size = 0
        self._pending: list[str | Binary | TooLarge] = []
        self.closed: ConnectionClosed | None = None
        self.last_pong = trio.Event()

    async def send_frames(self, data: bytes) -> None:
        """Write already-encoded frames (one or many, concatenated)."""
        async with self._send_lock:
            await self._stream.send_all(data)

    async def send_text(self, text: str) -> None:
        await self.send_frames(text_frame(text.encode()))

    async def ping(self, payload: bytes = b"") -> None:
        await self.send_frames(self._ws.send(Ping(payload=payload)))

    async def receive(self) -> str | Binary | TooLarge:
        """The next whole message; raises ConnectionClosed when the peer is gone."""
        while not self._pending:
            if self.closed is not None:
                raise self.closed
            try:
                data = await self._stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.closed = ConnectionClosed(1006, "connection lost")
                raise self.closed from exc
            if not data:
                self.closed = ConnectionClosed(1006, "connection lost")
                raise self.closed
            self._ws.receive_data(data)
            await self._handle_events()
        return self._pending.pop(0)

    async def _handle_events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                await self._collect(event.data, event.message_finished)
            elif isinstance(event, Ping):
                await self.send_frames(self._ws.send(event.response()))
            elif isinstance(event, Pong):
                self.last_pong.set()
                self.last_pong = trio.Event()
            elif isinstance(event, CloseConnection):
                await self._answer_close(event)

    async def _collect(self, data: str | bytes, finished: bool) -> None:
        self._size += len(data)
        if self._size > self._max * HARD_CAP_FACTOR:
            await self.close(1009, "Message too big")
            return
        if self._size <= self._max:
            self._parts.append(data)
        if not finished:
            return
        if self._size > self._max:
            self._pending.append(TooLarge(self._size))
        elif self._parts and isinstance(self._parts[0], bytes):
            self._pending.append(Binary(b"".join(p for p in self._parts if isinstance(p, bytes))))
        else:
            self._pending.append("".join(p for p in self._parts if isinstance(p, str)))
        self._parts, self._size = [], 0

    async def _answer_close(self, event: CloseConnection) -> None:
        self.closed = ConnectionClosed(event.code, event.reason or "")
        try:
            await self.send_frames(self._ws.send(event.response()))
        except (trio.BrokenResourceError, trio.ClosedResourceError, RuntimeError):
            pass

    async def close(self, code: int, reason: str = "") -> None:
        """Send a close frame (bounded, shielded) and close the stream."""
        if self.closed is None:
            self.closed = ConnectionClosed(code, reason)
            with trio.move_on_after(CLOSE_GRACE_S, shield=True):
                try:
                    await self.send_frames(self._ws.send(CloseConnection(code, reason)))
                except (trio.BrokenResourceError, trio.ClosedResourceError, RuntimeError):
                    pass
        with trio.move_on_after(CLOSE_GRACE_S, shield=True):
            await self._stream.aclose()


async def accept(
    stream: trio.abc.Stream, head: bytes, *, max_message_bytes: int
) -> WsConnection | None:
    """Complete the server handshake for a request whose head we already read."""
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(head)
    for event in ws.events():
        if isinstance(event, Request):
            await stream.send_all(ws.send(AcceptConnection()))
            return WsConnection(stream, ws, max_message_bytes=max_message_bytes)
    await stream.send_all(ws.send(RejectConnection(status_code=400)))
    return None


def close_reason_text(code: int) -> str:
    try:
        return CloseReason(code).name
    except ValueError:
        return str(code)
