"""Entry for /ws/client and /ws/gateway upgrades handed over by the listener.

The upgrade rate limit (30 per minute per IP, both endpoints, realtime.md §1.1) is checked
before the handshake; a refused upgrade gets a plain 429.
"""

from __future__ import annotations

import logging
from typing import Final

import trio

from agentim.logs import log_budget
from agentim.protocol.forwarded import client_address
from agentim.services import Services
from agentim.settings import Settings
from agentim.ws import transport
from agentim.ws.client_session import ClientEndpoint
from agentim.ws.gateway_session import GatewayEndpoint
from agentim.ws.listener import RequestHead
from agentim.ws.session import Endpoint, Session, SessionLimits

log = logging.getLogger("Connections")

CLIENT_PATH: Final = "/ws/client"
# Warnings one socket may log per minute (bad frames, refused actions); past that they are
# counted and the total is logged when it closes, so a peer sending junk in a loop cannot flood
# the log.
LOG_BUDGET: Final = 20
TOO_MANY_UPGRADES: Final = (
    b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
    b"content-length: 48\r\nconnection: close\r\n\r\n"
    b'{"ok":false,"error":"Too many upgrade attempts"}'
)


def client_ip(head: RequestHead, stream: trio.SocketStream, settings: Settings) -> str:
    """As http/_request.client_ip, from the upgrade request's head and socket."""
    return client_address(
        head.headers.get("x-forwarded-for", ""), head.headers.get("x-real-ip", ""),
        _peer(stream), trust_proxy=settings.trust_proxy, hops=settings.trust_proxy_hops,
    )  # fmt: skip


def _peer(stream: trio.SocketStream) -> str | None:
    try:
        return str(stream.socket.getpeername()[0])
    except (OSError, AttributeError, IndexError):
        return None


def session_limits(settings: Settings) -> SessionLimits:
    return SessionLimits(
        auth_timeout_s=settings.ws_auth_timeout_s,
        ping_interval_s=settings.ws_ping_interval_s,
        outbox_frames=settings.ws_outbox_frames,
    )


async def handle_upgrade(services: Services, stream: trio.SocketStream, head: RequestHead) -> None:
    """Complete the handshake, then run the session for the endpoint.

    Error policy: a session's unexpected error is logged and ends only that connection.
    """
    if not await _upgrade_allowed(services, stream, head):
        return
    is_client = head.path == CLIENT_PATH
    settings = services.settings
    limit = settings.max_client_frame_bytes if is_client else settings.max_gateway_frame_bytes
    try:
        conn = await transport.accept(stream, head.raw, max_message_bytes=limit)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return
    if conn is None:
        return
    endpoint: Endpoint = ClientEndpoint(services) if is_client else GatewayEndpoint(services)
    session = Session(conn, services.hub, kind="client" if is_client else "gateway",
                      limits=session_limits(settings), metrics=services.metrics)  # fmt: skip
    with log_budget(LOG_BUDGET) as budget:
        try:
            await session.run(endpoint)
        except Exception:
            log.exception("WebSocket session on %s failed", head.path)
    if budget.suppressed:
        log.warning("%d more warnings from %s socket %s (user %s) were not logged",
                    budget.suppressed, session.kind, session.id,
                    session.user_id or "none")  # fmt: skip


async def _upgrade_allowed(
    services: Services, stream: trio.SocketStream, head: RequestHead
) -> bool:
    if not services.limiter.enabled:
        return True
    ip = client_ip(head, stream, services.live.current)
    decision = await services.limiter.hit("ws_upgrade", ip)
    if decision.allowed:
        return True
    with trio.move_on_after(transport.CLOSE_GRACE_S, shield=True):
        try:
            await stream.send_all(TOO_MANY_UPGRADES)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        await stream.aclose()
    return False
