"""Session timing over memory streams with a virtual clock: auth timeout, keep-alive, outbox."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from agentim.protocol.wsframes import text_frame
from agentim.routing.flush import Flusher
from agentim.routing.hub import Hub
from agentim.routing.outbox import Outbox
from agentim.ws import transport
from agentim.ws.session import Incoming, Session, SessionLimits


class EchoEndpoint:
    """Answers every text frame with itself; `auth` authenticates the socket."""

    def __init__(self) -> None:
        self.closed = trio.Event()

    async def handle(self, session: Session, message: Incoming) -> None:
        if message == "auth":
            session.authenticate("u1", "user")
        session.send_nowait(text_frame(str(message).encode()))

    async def handle_batch(self, session: Session, messages: list[Incoming]) -> None:
        for message in messages:
            await self.handle(session, message)

    async def on_close(self, session: Session) -> None:
        self.closed.set()


class FakePeer:
    """The client side of a memory-stream WebSocket, driven by hand."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)

    def request(self) -> bytes:
        return self.ws.send(Request(host="hub", target="/ws/client"))

    async def events(self) -> list[object]:
        data = await self.stream.receive_some(65536)
        self.ws.receive_data(data or None)
        return list(self.ws.events())

    async def send_text(self, text: str) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(text)))

    async def wait_close(self) -> CloseConnection:
        while True:
            for event in await self.events():
                if isinstance(event, CloseConnection):
                    return event


LIMITS = SessionLimits(auth_timeout_s=10.0, ping_interval_s=30.0, outbox_frames=8)


async def _open(nursery: trio.Nursery, hub: Hub, endpoint: EchoEndpoint) -> FakePeer:
    if hub.nursery is None:
        await nursery.start(hub.run)  # the keep-alive ticker runs in the hub's nursery
    server_stream, client_stream = trio.testing.memory_stream_pair()
    peer = FakePeer(client_stream)
    head = peer.request()

    async def serve() -> None:
        conn = await transport.accept(server_stream, head, max_message_bytes=1024)
        assert conn is not None
        await Session(conn, hub, kind="client", limits=LIMITS).run(endpoint)

    nursery.start_soon(serve)
    assert any(isinstance(e, AcceptConnection) for e in await peer.events())
    return peer


async def test_no_auth_within_the_timeout_closes_4001(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, endpoint = Hub(), EchoEndpoint()
    peer = await _open(nursery, hub, endpoint)
    start = trio.current_time()
    close = await peer.wait_close()
    assert (close.code, close.reason) == (4001, "Authentication timeout")
    assert 10.0 <= trio.current_time() - start < 10.5
    await endpoint.closed.wait()
    assert not hub.pending and not hub.sessions


async def test_authenticated_socket_outlives_the_auth_timeout(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, endpoint = Hub(), EchoEndpoint()
    peer = await _open(nursery, hub, endpoint)
    await peer.send_text("auth")
    await peer.events()
    assert next(iter(hub.sessions.values())).user_id == "u1"
    with trio.move_on_after(25):  # the first ping comes at 30 s
        assert await peer.events() == []
    assert not endpoint.closed.is_set()


async def test_two_missed_pongs_close_the_socket(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, endpoint = Hub(), EchoEndpoint()
    peer = await _open(nursery, hub, endpoint)
    await peer.send_text("auth")
    start, pings = trio.current_time(), 0
    while True:  # never answer: wsproto queues pongs but we do not send them
        events = await peer.events()
        pings += sum(isinstance(e, Ping) for e in events)
        close = next((e for e in events if isinstance(e, CloseConnection)), None)
        if close is not None:
            break
    assert (close.code, close.reason) == (1001, "Ping timeout")
    assert pings == 2
    assert 90.0 <= trio.current_time() - start < 91


async def test_answered_pings_keep_the_socket(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub, endpoint = Hub(), EchoEndpoint()
    peer = await _open(nursery, hub, endpoint)
    await peer.send_text("auth")
    with trio.move_on_after(200):
        while True:
            for event in await peer.events():
                assert not isinstance(event, CloseConnection)
                if isinstance(event, Ping):
                    await peer.stream.send_all(peer.ws.send(event.response()))
    assert not endpoint.closed.is_set()


async def test_close_soon_sends_the_error_after_queued_frames(nursery: trio.Nursery) -> None:
    hub, endpoint = Hub(), EchoEndpoint()
    peer = await _open(nursery, hub, endpoint)
    await peer.send_text("auth")
    assert [e.data for e in await peer.events() if isinstance(e, TextMessage)] == ["auth"]
    session = next(iter(hub.sessions.values()))
    session.send_nowait(text_frame(b"queued"))
    session.close_soon(1008, "Session revoked", error={"code": "X", "message": "y"})
    texts: list[str] = []
    while True:
        events = await peer.events()
        texts += [e.data for e in events if isinstance(e, TextMessage)]
        close = next((e for e in events if isinstance(e, CloseConnection)), None)
        if close is not None:
            break
    assert texts == ["queued", '{"type":"server:error","code":"X","message":"y"}']
    assert (close.code, close.reason) == (1008, "Session revoked")
    with trio.fail_after(5):
        await endpoint.closed.wait()


async def test_a_full_outbox_drops_droppable_frames_and_closes_otherwise() -> None:  # noqa: ASYNC124 (close_soon reads trio's clock)
    limits = SessionLimits(auth_timeout_s=10.0, ping_interval_s=30.0, outbox_frames=2)
    server_stream, _ = trio.testing.memory_stream_pair()
    conn = transport.WsConnection(server_stream, max_message_bytes=1024)
    session = Session(conn, Hub(), kind="client", limits=limits)  # not running: nothing drains
    assert session.send_nowait(b"1") and session.send_nowait(b"2")
    assert not session.send_nowait(b"3", droppable=True)
    assert session.close_request is None and session.dropped == 1
    assert not session.send_nowait(b"4")
    assert session.close_request == (1013, "Slow consumer")


async def test_peer_ping_close_and_protocol_errors_get_their_replies(
    nursery: trio.Nursery,
) -> None:
    hub, endpoint = Hub(), EchoEndpoint()
    peer = await _open(nursery, hub, endpoint)
    await peer.stream.send_all(peer.ws.send(Ping(b"hi")))
    assert any(isinstance(e, Pong) and e.payload == b"hi" for e in await peer.events())
    await peer.stream.send_all(peer.ws.send(CloseConnection(1000, "bye")))
    close = await peer.wait_close()
    assert close.code == 1000
    with trio.fail_after(5):
        await endpoint.closed.wait()

    broken = await _open(nursery, hub, EchoEndpoint())
    await broken.stream.send_all(text_frame(b"unmasked"))  # servers' frames are
    close = await broken.wait_close()
    assert (close.code, close.reason) == (1002, "Unmasked frame or reserved bits set")


async def test_outbox_hands_over_everything_queued_at_once() -> None:
    outbox = Outbox(4)
    for frame in (b"a", b"b", b"c", b"d"):
        outbox.queue_nowait(frame)
    with pytest.raises(trio.WouldBlock):
        outbox.queue_nowait(b"over the bound")
    assert outbox.take() == [b"a", b"b", b"c", b"d"]
    outbox.queue_nowait(b"e")
    outbox.put_back(b"rest of d")
    outbox.close()
    outbox.force_nowait(b"ignored after close")
    with pytest.raises(trio.ClosedResourceError):
        outbox.queue_nowait(b"f")
    assert outbox.take() == [b"rest of d", b"e"]
    assert outbox.take() == []


async def test_flushing_a_dead_socket_of_an_ending_session_is_quiet() -> None:
    """A peer gone mid-write while the session's nursery has just closed (its run() not resumed
    yet): the flush leaves the frames and raises nothing (it used to crash the hub's flusher)."""
    ours, theirs = trio.socket.socketpair()
    theirs.close()
    conn = transport.WsConnection(trio.SocketStream(ours), max_message_bytes=1024)
    limits = SessionLimits(auth_timeout_s=10, ping_interval_s=30, outbox_frames=8)
    session = Session(conn, Hub(), kind="client", limits=limits)
    async with trio.open_nursery() as ended:
        session._nursery = ended
    session.outbox.queue_nowait(text_frame(b"late"))
    session.flush()  # EPIPE, and no writer can start any more
    assert len(session.outbox) == 1
    ours.close()


async def test_the_flusher_survives_a_failing_socket() -> None:
    flushed: list[str] = []

    class Broken:
        def flush(self) -> None:
            raise RuntimeError("boom")

    class Fine:
        def flush(self) -> None:
            flushed.append("fine")

    flusher = Flusher()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flusher.run)
        await trio.testing.wait_all_tasks_blocked()
        assert flusher.add(Broken()) and flusher.add(Fine())
        await trio.testing.wait_all_tasks_blocked()
        assert flusher.add(Fine())
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert flushed == ["fine", "fine"]
