"""Entry for /ws/client and /ws/gateway upgrades handed over by the listener."""

from __future__ import annotations

import logging

import trio

from agentim.services import Services
from agentim.ws import transport
from agentim.ws.listener import RequestHead

log = logging.getLogger("Connections")


async def handle_upgrade(services: Services, stream: trio.SocketStream, head: RequestHead) -> None:
    """Complete the handshake, then run the session for the endpoint."""
    limit = (
        services.settings.max_client_frame_bytes
        if head.path == "/ws/client"
        else services.settings.max_gateway_frame_bytes
    )
    try:
        conn = await transport.accept(stream, head.raw, max_message_bytes=limit)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return
    if conn is None:
        return
    try:
        while True:
            await conn.receive()  # sessions arrive with the real-time issue
    except transport.ConnectionClosed:
        pass
    finally:
        await conn.close(1000)
