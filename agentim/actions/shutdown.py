"""Shutdown's first step (D14): the replies agents are streaming end for the clients waiting on
them before those clients are told the server is going.

Gateway sockets close first; each one's open streams are stored with an error chunk and
`server:message_complete` is published (ws/gateway_session.py on_close). A marker published after
them and delivered back to this process proves that those frames are queued on this process's
client sockets; only then do the clients get `SERVER_SHUTDOWN` (main.py).
"""

from __future__ import annotations

from typing import Final

from agentim.protocol.events import control_event
from agentim.protocol.ids import new_id
from agentim.routing.hub import BARRIER
from agentim.services import Services

GOING_AWAY: Final = (1001, "Server shutting down")


async def finish_replies(services: Services) -> None:
    """Close every gateway socket, wait for their streams to be completed, then wait until those
    completions have been delivered to this process's sockets. The caller bounds the time."""
    closing = services.hub.close_gateways(*GOING_AWAY)
    for session in closing:
        await session.finished.wait()
    await delivered_here(services)


async def delivered_here(services: Services) -> None:
    """Wait until every event published so far by this process has reached its own sockets.

    Events travel one Redis channel in publish order, so a marker published now arrives after
    them; with Redis down, publish delivers locally at once (D16) and so does the marker.
    """
    hub, token = services.hub, new_id()
    reached = hub.expect_barrier(token)
    try:
        await services.events.publish(control_event(BARRIER, hub.process_id, token=token))
        await reached.wait()
    finally:
        hub.forget_barrier(token)  # timed out: a marker arriving later finds no waiter
