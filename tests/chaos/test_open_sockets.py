"""/api/health counts every open WebSocket, signed in or not, and says how many are signed in
(DIFFERENCES D19; issue 15, item 8: with 2,000 unauthenticated sockets it said 0)."""

from __future__ import annotations

import base64
import os
from typing import Any

import httpx
import trio

from tests.helpers import RunningHub, signed_in_user
from tests.ws.wsclient import signed_in

UNAUTHENTICATED = 300  # "a few hundred"; each costs the test and the hub one descriptor


async def _bare_socket(port: int, path: str) -> trio.SocketStream:
    """A WebSocket that completed its handshake and never authenticates."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send_all(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive_some(4096)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return stream


async def _system(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/health")
    assert response.status_code == 200
    return response.json()["system"]  # type: ignore[no-any-return]


async def _wait_for(client: httpx.AsyncClient, open_sockets: int) -> dict[str, Any]:
    with trio.fail_after(10):
        while (system := await _system(client))["openSockets"] != open_sockets:  # noqa: ASYNC110
            await trio.sleep(0.05)  # polling the endpoint is what the test does
    return system


async def test_health_counts_unauthenticated_sockets(
    hub: RunningHub, client: httpx.AsyncClient
) -> None:
    user = await signed_in_user(hub)
    bare: list[trio.SocketStream] = []
    with trio.fail_after(30):
        async with signed_in(hub, user), signed_in(hub, user):
            for i in range(UNAUTHENTICATED):
                path = "/ws/gateway" if i % 3 == 0 else "/ws/client"
                bare.append(await _bare_socket(hub.port, path))
            system = await _wait_for(client, UNAUTHENTICATED + 2)
            assert system["authenticatedSockets"] == 2
            assert (system["clientSockets"], system["gatewaySockets"]) == (2, 0)
            for stream in bare:
                await stream.aclose()
            system = await _wait_for(client, 2)
            assert system["authenticatedSockets"] == 2
        system = await _wait_for(client, 0)
    assert system["authenticatedSockets"] == 0
