"""Which hub process holds each gateway's socket: the one home of that rule (A18, B3-B7, D15).

Two halves kept together here: `Hub.gateways` (gateway id → this process's socket, the newest
socket of an id wins) and the Redis record `gw:proc:<gatewayId>` → the process holding it
(store/gateways.py), which counts only while that process's heartbeat lives. The gateway list's
live state, relays to a gateway by id and the reclaim of a dead process (actions/reclaim.py) all
read these. While Redis is unreachable each process knows only its own sockets (D16).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agentim.routing.hub import LiveSession
from agentim.routing.relay_requests import GATEWAY_FRAME, deliver_gateway_frame
from agentim.services import Services
from agentim.store.gateways import GatewayKv
from agentim.store.kv import KvUnavailable

log = logging.getLogger("GatewayHandler")


async def gateway_connected(services: Services, session: LiveSession, gateway_id: str) -> None:
    """A gateway socket authenticated: it is that gateway here and, through Redis, for every
    process (frames for its id reach it; the gateway list shows it connected). Ids the socket
    held before (it authenticated again under another id) are let go."""
    hub = services.hub
    hub.controls.setdefault(GATEWAY_FRAME, deliver_gateway_frame)
    dropped = hub.add_gateway(gateway_id, session)
    bindings = GatewayKv(services.kv)
    try:
        for old in dropped:
            await bindings.unbind_gateway(old, hub.process_id)
        await bindings.bind_gateway(gateway_id, hub.process_id)
    except KvUnavailable as exc:
        log.warning("Redis unavailable, gateway %s known to this process only: %s", gateway_id, exc)


async def gateway_disconnected(services: Services, session: LiveSession, gateway_id: str) -> None:
    """The socket closed; nothing changes when a newer socket holds the id."""
    hub = services.hub
    if not hub.remove_gateway(gateway_id, session):
        return
    try:
        await GatewayKv(services.kv).unbind_gateway(gateway_id, hub.process_id)
    except KvUnavailable as exc:  # the record dies with this process's heartbeat
        log.warning("Redis unavailable to drop gateway %s's process: %s", gateway_id, exc)


async def gateway_online(services: Services, gateway_id: str) -> bool:
    """The gateway has a socket on a live hub process (False when Redis cannot tell and the
    socket is not here: events stay in this process while Redis is down)."""
    if gateway_id in services.hub.gateways:
        return True
    try:
        return await GatewayKv(services.kv).gateway_process(gateway_id) is not None
    except KvUnavailable:
        return False


async def connected_gateways(services: Services, gateway_ids: Sequence[str]) -> set[str] | None:
    """Which of these gateways have a socket now, on any hub process (A18).

    Returns:
        The connected ids, or None when Redis is unreachable and only this process's own
        sockets are known (the caller then falls back to the stored state for the others).
    """
    local = {g for g in gateway_ids if g in services.hub.gateways}
    try:
        remote = await GatewayKv(services.kv).live_gateways(
            [g for g in gateway_ids if g not in local]
        )
    except KvUnavailable as exc:
        log.warning("Redis unavailable to tell which gateways are connected: %s", exc)
        return None
    return local | remote


async def rebind_gateways(services: Services) -> None:
    """Record this process's gateway sockets in Redis again (after a survivor released them,
    or Redis lost its data: actions/reclaim.py). KvUnavailable propagates."""
    hub = services.hub
    bindings = GatewayKv(services.kv)
    for gateway_id in sorted(hub.gateways):
        await bindings.bind_gateway(gateway_id, hub.process_id)
