"""The hub's own listener (DIFFERENCES D22): WebSocket upgrades to our transport, everything
else replayed into hypercorn, on one port."""

from __future__ import annotations

import trio
import trio_websocket

from tests.helpers import RunningHub


async def _exchange(hub: RunningHub, *chunks: bytes) -> bytes:
    """Send the pieces (the last request says Connection: close) and read until EOF."""
    stream = await trio.open_tcp_stream("127.0.0.1", hub.port)
    async with stream:
        for chunk in chunks:
            await stream.send_all(chunk)
            await trio.sleep(0.05)  # let the server see each piece separately
        received = b""
        with trio.fail_after(10):
            while data := await stream.receive_some(65536):
                received += data
        return received


async def test_http_request_head_split_across_packets(hub: RunningHub) -> None:
    response = await _exchange(
        hub, b"GET /api/he", b"alth HTTP/1.1\r\nHo", b"st: x\r\nConnection: close\r\n\r\n"
    )
    assert response.startswith(b"HTTP/1.1 200")
    assert b'"ok":true' in response


async def test_pipelined_requests_are_replayed_in_order(hub: RunningHub) -> None:
    request = b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response = await _exchange(hub, request + last)
    assert response.count(b"HTTP/1.1 200") == 2


async def test_websocket_upgrade_and_http_share_the_port(hub: RunningHub) -> None:
    with trio.fail_after(10):
        async with trio_websocket.open_websocket_url(f"{hub.ws_url}/ws/client") as ws:
            assert not ws.closed
            await ws.send_message('{"type":"client:ping","ts":1}')


async def test_non_upgrade_requests_to_ws_paths_get_the_plain_404(hub: RunningHub) -> None:
    response = await _exchange(
        hub, b"GET /ws/client HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert response.startswith(b"HTTP/1.1 404")
    assert response.endswith(b"404 Not Found")


async def test_upgrade_to_an_unknown_path_is_refused(hub: RunningHub) -> None:
    head = (
        b"GET /ws/other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    stream = await trio.open_tcp_stream("127.0.0.1", hub.port)
    async with stream:
        await stream.send_all(head)
        with trio.fail_after(10):
            data = await stream.receive_some(65536)
    assert not data.startswith(b"HTTP/1.1 101")


async def test_keep_alive_connection_can_upgrade_after_http(hub: RunningHub) -> None:
    """A proxy that pools connections sends the upgrade after an ordinary request."""
    upgrade = (
        b"GET /ws/client HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    stream = await trio.open_tcp_stream("127.0.0.1", hub.port)
    async with stream:
        await stream.send_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        with trio.fail_after(10):
            while b'"ok":true' not in received:
                received += await stream.receive_some(65536)
            await stream.send_all(upgrade)
            answer = await stream.receive_some(65536)
    assert received.startswith(b"HTTP/1.1 200")
    assert answer.startswith(b"HTTP/1.1 101")
