"""Permission requests (DIFFERENCES D17): a gateway asks, a room member answers, or time runs out.

A pending request lives in Redis (`perm:<requestId>`, see store/gateways.py), so every process
can answer it and a reconnecting client gets it again; taking it out is one GETDEL, so exactly
one answer or expiry wins. The expiry timer belongs to the process that got the request
(routing/permissions.PermissionBroker).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from agentim.protocol import gateway as proto
from agentim.protocol.events import Target, control_event, frame_event
from agentim.protocol.timefmt import iso_from_epoch_ms
from agentim.routing.permissions import PERMISSION_PENDING
from agentim.services import Services
from agentim.store.agents import is_agent_member
from agentim.store.gateways import GatewayKv
from agentim.store.kv import KvUnavailable
from agentim.store.membership import is_member

log = logging.getLogger("GatewayHandler")

TIMEOUT: Final = "timeout"


async def request_permission(
    services: Services, *, agent_name: str, request: proto.GatewayPermissionRequest
) -> bool:
    """A gateway's agent asks the room (the caller checked that the socket owns the agent).

    Returns:
        False when dropped (logged): the agent is not in the room, or the id is taken.
    """
    if not await is_agent_member(services.db, request.agent_id, request.room_id):
        log.warning("Agent %s is not a member of room %s, dropping permission request",
                    request.agent_id, request.room_id)  # fmt: skip
        return False
    expires_ms = int(time.time() * 1000) + request.timeout_ms
    frame = proto.permission_request(
        request_id=request.request_id, agent_id=request.agent_id, agent_name=agent_name,
        room_id=request.room_id, tool_name=request.tool_name, tool_input=request.tool_input,
        expires_at=iso_from_epoch_ms(expires_ms),
    )  # fmt: skip
    if not await _store(services, frame, request.timeout_ms):
        log.warning("Permission request %s is already pending, dropping", request.request_id)
        return False
    await services.events.publish(frame_event(Target.ROOM, request.room_id, frame))
    await services.events.publish(control_event(
        PERMISSION_PENDING, services.hub.process_id, requestId=request.request_id,
        agentId=request.agent_id, roomId=request.room_id, expiresAtMs=expires_ms,
    ))  # fmt: skip
    return True


async def _store(services: Services, frame: dict[str, Any], timeout_ms: int) -> bool:
    try:
        return await GatewayKv(services.kv).put_permission(frame, -(-timeout_ms // 1000))
    except KvUnavailable as exc:
        log.warning("Redis unavailable for permission request %s; it can only time out: %s",
                    frame["requestId"], exc)  # fmt: skip
        return True


async def answer_permission(
    services: Services, user_id: str, request_id: str, decision: str,
    deny_reason: str | None = None,
) -> bool:  # fmt: skip
    """A room member's `client:permission_response` (allow, allowAlways or deny, with the
    optional `denyReason`) goes to the gateway.

    Unknown, answered or expired requests and non-members are ignored (debug/warn log).

    Returns:
        Whether this answer was the one sent.
    """
    kv = GatewayKv(services.kv)
    try:
        request = await kv.get_permission(request_id)
        if request is None:
            log.debug("Permission request %s is not pending; answer ignored", request_id)
            return False
        if not await is_member(services.db, user_id, request["roomId"]):
            log.warning("User %s answered permission request %s outside their rooms",
                        user_id, request_id)  # fmt: skip
            return False
        claimed = await kv.claim_permission(request_id)
    except KvUnavailable as exc:
        log.warning("Redis unavailable, permission answer %s dropped: %s", request_id, exc)
        return False
    if claimed is None:
        return False  # another member (or the expiry) was first
    agent_id = claimed["agentId"]
    response = proto.permission_response(request_id, agent_id, decision, deny_reason)
    await services.events.publish(frame_event(Target.AGENT, agent_id, response))
    return True


async def expire_permission(
    services: Services, request_id: str, agent_id: str, room_id: str
) -> bool:
    """The request's time is up: clients drop it, the gateway hears `timeout`.

    Returns:
        False when it had been answered already (nothing is sent).
    """
    try:
        if await GatewayKv(services.kv).claim_permission(request_id) is None:
            return False
    except KvUnavailable:
        pass  # nobody could have answered it meanwhile: the answer path needs Redis too
    await services.events.publish(
        frame_event(Target.ROOM, room_id, proto.permission_request_expired(request_id))
    )
    response = proto.permission_response(request_id, agent_id, TIMEOUT)
    await services.events.publish(frame_event(Target.AGENT, agent_id, response))
    return True


async def pending_permission_frames(services: Services, room_id: str) -> list[dict[str, Any]]:
    """The room's pending `server:permission_request` frames, for a client that (re)joins."""
    try:
        return await GatewayKv(services.kv).room_permissions(room_id)
    except KvUnavailable:
        return []
