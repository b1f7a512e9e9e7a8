"""FrameReader: client frames as wsproto's client encodes them, split anywhere."""

from __future__ import annotations

import struct

from hypothesis import given, strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from agentim.protocol.wsframes import text_frame
from agentim.ws.transport import (
    PONG,
    Binary,
    CloseFrame,
    FrameReader,
    PingFrame,
    ProtocolError,
    TooLarge,
    close_frame,
    unmask,
)

LIMIT = 1000


def client_bytes(*events: TextMessage | BytesMessage | Ping | Pong | CloseConnection) -> bytes:
    """What a browser-like client sends (masked with random keys)."""
    client = Connection(ConnectionType.CLIENT)
    return b"".join(client.send(event) for event in events)


def feed_in_chunks(data: bytes, cuts: list[int]) -> list[object]:
    reader, events, last = FrameReader(LIMIT), [], 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        events += reader.feed(data[last:cut])
        last = cut
    return events


def test_messages_of_each_kind() -> None:
    data = client_bytes(
        TextMessage("héllo"), BytesMessage(b"\x00\x01"), Ping(b"p"), Pong(b""),
        TextMessage("a", message_finished=False), Ping(b"in between"),
        TextMessage("b", message_finished=False), TextMessage("c"),
        CloseConnection(1000, "bye"),
    )  # fmt: skip
    after_close = client_bytes(TextMessage("ignored"))
    assert FrameReader(LIMIT).feed(data + after_close) == [
        "héllo", Binary(b"\x00\x01"), PingFrame(b"p"), PONG, PingFrame(b"in between"), "abc",
        CloseFrame(1000, "bye"),
    ]  # fmt: skip


@given(st.lists(st.text(max_size=300), min_size=1, max_size=6), st.lists(st.integers(0, 4000)))
def test_any_split_gives_the_same_messages(texts: list[str], cuts: list[int]) -> None:
    data = client_bytes(*(TextMessage(t) for t in texts))
    expected = [t if len(t.encode()) <= LIMIT else TooLarge(len(t.encode())) for t in texts]
    assert feed_in_chunks(data, cuts) == expected


def test_oversized_messages_are_skipped_and_reading_goes_on() -> None:
    big = "x" * (LIMIT + 1)
    data = client_bytes(
        TextMessage(big), TextMessage("x" * 600, message_finished=False),
        TextMessage("y" * 600), TextMessage("next"),
    )  # fmt: skip
    assert feed_in_chunks(data, [3, 500, 1200, 1700]) == [
        TooLarge(LIMIT + 1), TooLarge(1200), "next",
    ]  # fmt: skip


def test_abusive_sizes_and_protocol_errors() -> None:
    assert FrameReader(LIMIT).feed(client_bytes(TextMessage("x" * (4 * LIMIT + 1)))) == [
        ProtocolError(1009, "Message too big")
    ]
    unmasked = text_frame(b"hi")
    assert FrameReader(LIMIT).feed(unmasked)[0] == ProtocolError(
        1002, "Unmasked frame or reserved bits set"
    )
    bad_utf8 = bytes((0x81, 0x80 | 1)) + b"\x00\x00\x00\x00" + b"\xff"
    assert FrameReader(LIMIT).feed(bad_utf8) == [ProtocolError(1007, "Invalid UTF-8")]
    orphan = bytes((0x80, 0x80)) + b"\x00\x00\x00\x00"
    assert FrameReader(LIMIT).feed(orphan) == [ProtocolError(1002, "Unexpected continuation state")]


def test_close_frames() -> None:
    empty = bytes((0x88, 0x80)) + b"\x00\x00\x00\x00"
    assert FrameReader(LIMIT).feed(empty) == [CloseFrame(1005, "")]
    reserved = bytes((0x88, 0x82)) + b"\x00\x00\x00\x00" + struct.pack("!H", 1005)
    assert FrameReader(LIMIT).feed(reserved) == [ProtocolError(1002, "Invalid close code")]
    assert close_frame(4001, "Authentication timeout") == (
        b"\x88\x18\x0f\xa1Authentication timeout"
    )


def test_unmask() -> None:
    assert unmask(b"", b"abcd") == b""
    assert unmask(unmask(b"hello world", b"\x01\x02\x03\x04"), b"\x01\x02\x03\x04") == (
        b"hello world"
    )
