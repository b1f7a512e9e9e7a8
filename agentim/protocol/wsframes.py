"""Server→peer WebSocket frames (RFC 6455 §5.2): unmasked, so one encoding serves every
recipient of an event (DIFFERENCES D22). Pure; the hub and the transport both use it."""

from __future__ import annotations

import struct
from typing import Final

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked FIN frame."""
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 65536:
        return bytes((0x80 | opcode, 126)) + struct.pack("!H", length) + payload
    return bytes((0x80 | opcode, 127)) + struct.pack("!Q", length) + payload


def text_frame(payload: bytes) -> bytes:
    """One unmasked FIN text frame carrying UTF-8 `payload`."""
    return frame(OP_TEXT, payload)
