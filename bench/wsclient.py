"""A lean /ws/client speaker for load: raw TCP, hand-made frames, no JSON on the fast path.

Client frames use an all-zero mask (RFC 6455 allows any key), so masking costs nothing; server
frames are unmasked, so a receiver only walks headers to count them.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

import trio

RECEIVE_BYTES: Final = 1 << 20
ZERO_MASK: Final = b"\x00\x00\x00\x00"


def client_frame(text: str) -> bytes:
    payload = text.encode()
    length = len(payload)
    if length < 126:
        head = bytes((0x81, 0x80 | length))
    elif length < 65536:
        head = b"\x81\xfe" + struct.pack("!H", length)
    else:
        head = b"\x81\xff" + struct.pack("!Q", length)
    return head + ZERO_MASK + payload


class Socket:
    """One client socket; `on_frame(payload)` sees each text frame when given."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.frames = 0
        self.pending_pong: bytes | None = None
        self._send_lock = trio.Lock()  # the sender task and the reader's pongs share the socket

    @classmethod
    async def connect(
        cls, url: str, *, forwarded_for: str = "", path: str = "/ws/client"
    ) -> Socket:
        parts = urlsplit(url)
        stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 80)
        key = base64.b64encode(os.urandom(16)).decode()
        forwarded = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{forwarded}"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        await stream.send_all(request.encode())
        sock = cls(stream)
        while b"\r\n\r\n" not in sock.buffer:
            data = await stream.receive_some(RECEIVE_BYTES)
            if not data:
                raise ConnectionError("closed during handshake")
            sock.buffer += data
        head, _, rest = bytes(sock.buffer).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))
        sock.buffer = bytearray(rest)
        return sock

    async def send(self, message: dict[str, object]) -> None:
        await self.send_raw(client_frame(json.dumps(message, separators=(",", ":"))))

    async def send_raw(self, frame: bytes) -> None:
        """Write at once when the socket is free and takes it all (a message's send time is
        stamped just before: a trip through trio's scheduler here would be counted as hub
        latency); otherwise in turn, through the stream."""
        if not self._send_lock.locked():
            try:
                sent = os.write(self.stream.socket.fileno(), frame)  # trio's are non-blocking
            except BlockingIOError:
                sent = 0
            if sent == len(frame):
                return
            frame = frame[sent:]
        async with self._send_lock:
            await self.stream.send_all(frame)

    async def next_json(self) -> dict[str, object]:
        """The next frame, decoded (setup only)."""
        found: list[bytes] = []
        while not found:
            await self.pump(found.append, stop_after_one=True)
        return json.loads(found[0])  # type: ignore[no-any-return]

    async def pump(
        self, on_frame: Callable[[bytes], None] | None, *, stop_after_one: bool = False
    ) -> None:
        """Read once (if needed) and hand over every complete frame's payload."""
        if not self._parse(on_frame, stop_after_one):
            data = await self.stream.receive_some(RECEIVE_BYTES)
            if not data:
                raise ConnectionError("closed by the hub")
            self.buffer += data
            self._parse(on_frame, stop_after_one)
        if self.pending_pong is not None:
            pong, self.pending_pong = self.pending_pong, None
            await self.send_raw(pong)

    def _parse(self, on_frame: Callable[[bytes], None] | None, stop_after_one: bool) -> bool:
        buf, pos, found = self.buffer, 0, False
        end = len(buf)
        while end - pos >= 2:
            opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if end - start < 2:
                    break
                length, start = struct.unpack_from("!H", buf, start)[0], start + 2
            elif length == 127:
                if end - start < 8:
                    break
                length, start = struct.unpack_from("!Q", buf, start)[0], start + 8
            if end - start < length:
                break
            pos = start + length
            if opcode == 0x1:
                self.frames += 1
                found = True
                if on_frame is not None:
                    on_frame(bytes(buf[start:pos]))
                if stop_after_one:
                    break
            elif opcode == 0x9:  # ping: answer with a masked pong carrying the same payload
                payload = bytes(buf[start:pos])
                self.pending_pong = bytes((0x8A, 0x80 | len(payload))) + ZERO_MASK + payload
            elif opcode == 0x8:
                raise ConnectionError(f"closed by the hub: {bytes(buf[start:pos])!r}")
        del buf[:pos]
        return found

    async def aclose(self) -> None:
        with trio.move_on_after(1, shield=True):
            await self.stream.aclose()
