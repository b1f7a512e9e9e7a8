"""Relays between clients and gateways (head-gap B3-B7, B10-B16, B21-B22, A13): checks, then
the request to the gateway, and the gateway's answer back to the user who asked.

Every hop is an event (D15): a request reaches the agent's gateway as a `Target.AGENT` event and
a gateway addressed by id as the hub control `gateway_frame` (routing/relay_requests.py), so the
client and the gateway may be on different processes; answers go to the user's client sockets
(`Target.USER`). What must outlive one process is in Redis: which process holds a gateway
(actions/gateways.py), pending workspace requests and who waits for a command's result
(store/relays.py); while Redis is down each process knows only its own sockets (D16). Secrets
(API keys, OAuth URLs) are never logged.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from agentim.actions.gateways import gateway_online
from agentim.actions.messages import remove_upload_files
from agentim.errors import AgentImError, ErrorCode
from agentim.protocol import relays as proto
from agentim.protocol.events import Event, Target, frame_event
from agentim.protocol.ids import new_id
from agentim.routing.relay_requests import gateway_frame_event
from agentim.services import Services
from agentim.store import agents as agent_rows, relays as store
from agentim.store.db import DbError, Row
from agentim.store.gateways import GatewayKv
from agentim.store.kv import KvUnavailable
from agentim.store.membership import is_member

log = logging.getLogger("ClientHandler")
gateway_log = logging.getLogger("GatewayHandler")

WORKSPACE_TTL_S: Final = 30  # a workspace answer later than this is dropped (the reference's)
COMMAND_WAIT_S: Final = 600  # a command's requester is remembered this long (commands may be slow)
AGENT_OFFLINE: Final = "Agent is offline"
GATEWAY_OFFLINE: Final = "Gateway is offline"
GATEWAY_NOT_FOUND: Final = "Gateway not found"
COMMAND_DENIED: Final = "Insufficient permissions to command agents in this room"
NOT_A_MEMBER: Final = "You are not a member of this room"
AGENT_NOT_MEMBER: Final = "Agent is not a member of this room"
API_KEY_REQUIRED: Final = "API key is required for API mode credentials"


def _refused(code: ErrorCode, message: str, status: int = 400) -> AgentImError:
    return AgentImError(status, message, code=code)


async def agent_online(services: Services, agent_id: str) -> bool:
    if agent_id in services.hub.agents:
        return True
    try:
        return bool(await GatewayKv(services.kv).live_agents([agent_id]))
    except KvUnavailable:
        return False


async def to_user(services: Services, user_id: str, frame: dict[str, Any]) -> None:
    await services.events.publish(frame_event(Target.USER, user_id, frame))


async def _to_agent(services: Services, agent_id: str, frame: dict[str, Any]) -> None:
    await services.events.publish(frame_event(Target.AGENT, agent_id, frame))


async def _to_gateway(
    services: Services, gateway_id: str, owner_id: str, frame: dict[str, Any]
) -> None:
    text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
    await services.events.publish(gateway_frame_event(gateway_id, owner_id, text))


# pending requests: Redis, else this process ----------------------------------------------------
async def _put_request(services: Services, request_id: str, data: dict[str, Any]) -> None:
    try:
        await store.RelayKv(services.kv).put_request(request_id, data, ttl_s=WORKSPACE_TTL_S)
    except KvUnavailable:
        services.relays.put(request_id, data, WORKSPACE_TTL_S)


async def _take_request(services: Services, request_id: str) -> dict[str, Any] | None:
    local = services.relays.take(request_id)
    if local is not None:
        return local
    try:
        return await store.RelayKv(services.kv).take_request(request_id)
    except KvUnavailable:
        return None


def _command_key(agent_id: str, room_id: str, command: str) -> str:
    return f"{agent_id}:{room_id}:{command}"


async def _push_waiter(services: Services, key: str, user_id: str) -> None:
    try:
        await store.RelayKv(services.kv).push_waiter(key, user_id, ttl_s=COMMAND_WAIT_S)
    except KvUnavailable:
        services.relays.push_waiter(key, user_id)


async def _pop_waiter(services: Services, key: str) -> str | None:
    local = services.relays.pop_waiter(key)
    if local is not None:
        return local
    try:
        return await store.RelayKv(services.kv).pop_waiter(key)
    except KvUnavailable:
        return None


# client requests about an agent in a room ------------------------------------------------------
async def _access(services: Services, user_id: str, room_id: str, agent_id: str) -> Row:
    """The caller is a member of the room and the agent an agent member of it."""
    access = await store.command_access(services.db, room_id, user_id, agent_id)
    if access is None:
        raise _refused(ErrorCode.ROOM_NOT_FOUND, "Room not found", 404)
    if access["role"] is None:
        raise _refused(ErrorCode.NOT_A_MEMBER, NOT_A_MEMBER, 403)
    if not access["agent_member"]:
        raise _refused(ErrorCode.NOT_A_MEMBER, AGENT_NOT_MEMBER, 403)
    return access


async def agent_command(
    services: Services, *, user_id: str, message: proto.ClientAgentCommand
) -> dict[str, Any] | None:
    """Send `server:agent_command` to the agent's gateway.

    Returns:
        The `server:agent_command_result` to answer the caller with when the agent is offline.

    Raises:
        AgentImError: ROOM_NOT_FOUND, NOT_A_MEMBER, or PERMISSION_DENIED below agentCommandRole.
    """
    access = await _access(services, user_id, message.room_id, message.agent_id)
    if not access["may_command"]:  # the room's agentCommandRole (store/membership.py)
        raise _refused(ErrorCode.PERMISSION_DENIED, COMMAND_DENIED, 403)
    if not await agent_online(services, message.agent_id):
        return proto.agent_command_result(
            agent_id=message.agent_id, room_id=message.room_id, command=message.command,
            success=False, message=AGENT_OFFLINE,
        )  # fmt: skip
    key = _command_key(message.agent_id, message.room_id, message.command)
    await _push_waiter(services, key, user_id)  # before sending: the answer may be quick
    await _to_agent(services, message.agent_id, proto.agent_command(
        agent_id=message.agent_id, room_id=message.room_id, command=message.command,
        args=message.args, user_id=user_id,
    ))  # fmt: skip
    return None


async def query_agent_info(
    services: Services, *, user_id: str, agent_id: str, room_id: str | None
) -> Row | None:
    """Ask the agent's gateway for its live settings (answered to the room by the gateway).

    Returns:
        The agent's row when its gateway is offline (the caller answers from it), else None.

    Raises:
        AgentImError: the room checks of `_access` when `room_id` is given; INVALID_REQUEST
            `Agent not found` for an agent the caller neither owns nor shares a room with.
    """
    if room_id is not None:
        await _access(services, user_id, room_id, agent_id)
    elif not await store.agent_visible(services.db, agent_id, user_id):
        raise _refused(ErrorCode.INVALID_REQUEST, "Agent not found", 404)
    if await agent_online(services, agent_id):
        await _to_agent(services, agent_id, proto.query_agent_info(agent_id, room_id))
        return None
    return await agent_rows.get_agent(services.db, agent_id)


async def request_workspace(
    services: Services, *, user_id: str, message: proto.ClientRequestWorkspace
) -> dict[str, Any] | None:
    """Relay a workspace request with a fresh requestId, kept WORKSPACE_TTL_S for the answer.

    Returns:
        The `server:workspace_response` of kind `error` when the agent is offline, else None.
    """
    await _access(services, user_id, message.room_id, message.agent_id)
    request_id = new_id()
    if not await agent_online(services, message.agent_id):
        return proto.workspace_response(
            agent_id=message.agent_id,
            request_id=request_id,
            response={"kind": "error", "message": AGENT_OFFLINE},
        )
    pending = {"userId": user_id, "roomId": message.room_id, "agentId": message.agent_id}
    await _put_request(services, request_id, pending)
    await _to_agent(services, message.agent_id, proto.request_workspace(
        agent_id=message.agent_id, room_id=message.room_id, request_id=request_id,
        request=message.request,
    ))  # fmt: skip
    return None


# client requests to a gateway by id (credentials, subscription OAuth) --------------------------
async def _owned_gateway(services: Services, user_id: str, gateway_id: str) -> None:
    if await store.get_gateway_owner(services.db, gateway_id) != user_id:
        raise _refused(ErrorCode.GATEWAY_NOT_FOUND, GATEWAY_NOT_FOUND, 404)


def _gateway_frame(message: proto.GatewayTargeted, request_id: str) -> dict[str, Any]:
    if isinstance(message, proto.ClientListGatewayCredentials):
        return proto.list_credentials(request_id, message)
    if isinstance(message, proto.ClientAddGatewayCredential):
        return proto.add_credential(request_id, message)
    if isinstance(message, proto.ClientManageGatewayCredential):
        return proto.manage_credential(request_id, message)
    if isinstance(message, proto.ClientStartGatewayOAuth):
        return proto.start_oauth(request_id, message)
    return proto.complete_oauth(message)


async def relay_to_gateway(
    services: Services, *, user_id: str, message: proto.GatewayTargeted
) -> dict[str, Any] | None:
    """Send the credential or OAuth request to the caller's own gateway.

    Returns:
        For `client:start_gateway_oauth` to an offline gateway, the failed
        `server:gateway_oauth_result` to answer with; else None.

    Raises:
        AgentImError: GATEWAY_NOT_FOUND (no such gateway of the caller's), INVALID_REQUEST (an
            API-mode credential without a key), GATEWAY_OFFLINE.
    """
    await _owned_gateway(services, user_id, message.gateway_id)
    if isinstance(message, proto.ClientAddGatewayCredential) and message.mode == "api" \
            and not message.api_key:  # fmt: skip
        raise _refused(ErrorCode.INVALID_REQUEST, API_KEY_REQUIRED)
    request_id = message.request_id if isinstance(message, proto.ClientCompleteGatewayOAuth) \
        else new_id()  # fmt: skip
    if not await gateway_online(services, message.gateway_id):
        if isinstance(message, proto.ClientStartGatewayOAuth):
            return proto.gateway_oauth_result(message.gateway_id, request_id=request_id,
                                              success=False, error=GATEWAY_OFFLINE,
                                              credential=None)  # fmt: skip
        raise _refused(ErrorCode.GATEWAY_OFFLINE, GATEWAY_OFFLINE, 503)
    frame = _gateway_frame(message, request_id)
    await _to_gateway(services, message.gateway_id, user_id, frame)
    return None


async def spawn_agent(
    services: Services, *, user_id: str, gateway_id: str, agent_type: str, name: str,
    working_directory: str | None, credential_id: str | None,
) -> None:  # fmt: skip
    """POST /api/agents/spawn: ask the caller's gateway to start an agent (A13).

    Raises:
        AgentImError: 404 `Gateway not found`, 503 `Gateway is offline`.
    """
    await _owned_gateway(services, user_id, gateway_id)
    if not await gateway_online(services, gateway_id):
        raise _refused(ErrorCode.GATEWAY_OFFLINE, GATEWAY_OFFLINE, 503)
    frame = proto.spawn_agent(request_id=new_id(), agent_type=agent_type, name=name,
                              working_directory=working_directory,
                              credential_id=credential_id)  # fmt: skip
    await _to_gateway(services, gateway_id, user_id, frame)


# rewind ------------------------------------------------------------------------------------------
async def _rewind_agents(services: Services, room_id: str) -> list[str]:
    """The room's agent members, once each supports `rewind` (PERMISSION_DENIED otherwise)."""
    rows = await store.list_room_agent_capabilities(services.db, room_id)
    for row in rows:
        if not row["found"]:
            continue  # a member row of a deleted agent: nothing to ask (the reference skips it)
        try:
            capabilities = json.loads(row["capabilities"]) if row["capabilities"] else None
        except ValueError:
            capabilities = None
        if not isinstance(capabilities, list) or "rewind" not in capabilities:
            raise _refused(ErrorCode.PERMISSION_DENIED,
                           f"Agent {row['member_id']} does not support rewind", 403)  # fmt: skip
    return [row["member_id"] for row in rows]


async def rewind_room(services: Services, *, user_id: str, room_id: str, message_id: str) -> None:
    """Delete the caller's message and everything after it in the room (B6), when every agent
    of the room can rewind; the agents get `server:rewind_agent`, the room `server:room_rewound`.

    Raises:
        AgentImError: NOT_A_MEMBER, INVALID_MESSAGE (no such message in the room),
            PERMISSION_DENIED (not the caller's own user message, or an agent without rewind),
            INTERNAL_ERROR when the delete fails.
    """
    if not await is_member(services.db, user_id, room_id):
        raise _refused(ErrorCode.NOT_A_MEMBER, NOT_A_MEMBER, 403)
    target = await store.get_room_message(services.db, room_id, message_id)
    if target is None:
        raise _refused(ErrorCode.INVALID_MESSAGE, "Message not found in this room", 404)
    if target["sender_id"] != user_id:
        raise _refused(ErrorCode.PERMISSION_DENIED, "You can only rewind to your own messages", 403)
    if target["sender_type"] != "user":
        raise _refused(ErrorCode.PERMISSION_DENIED, "Can only rewind to user messages", 403)
    agent_ids = await _rewind_agents(services, room_id)
    try:
        async with services.db.transaction() as tx:
            removed, urls = await store.delete_messages_from(tx, room_id, target["created_at"])
    except DbError as exc:
        log.error("Transaction error in handleRewindRoom: %s", exc)
        raise _refused(ErrorCode.INTERNAL_ERROR, "Failed to rewind room", 500) from exc
    await remove_upload_files(services.blobs, urls)
    events: list[Event] = [
        frame_event(Target.AGENT, agent_id,
                    proto.rewind_agent(agent_id=agent_id, room_id=room_id, message_id=message_id))
        for agent_id in agent_ids
    ]  # fmt: skip
    events.append(frame_event(Target.ROOM, room_id, proto.room_rewound(
        room_id=room_id, message_id=message_id, removed_ids=removed, content=target["content"],
    )))  # fmt: skip
    await services.events.publish_all(events)
    log.info("Room %s rewound to message %s by user %s, removed %d message(s)", room_id,
             message_id, user_id, len(removed))  # fmt: skip


# gateway answers ---------------------------------------------------------------------------------
async def command_answered(services: Services, result: proto.GatewayAgentCommandResult) -> None:
    """The result goes to the user who sent the command; with none waiting (expired, or a
    result nobody asked for), to the room, as the reference always does."""
    frame = proto.agent_command_result(
        agent_id=result.agent_id, room_id=result.room_id, command=result.command,
        success=result.success, message=result.message,
    )  # fmt: skip
    waiter = await _pop_waiter(services, _command_key(result.agent_id, result.room_id,
                                                      result.command))  # fmt: skip
    if waiter is not None:
        await to_user(services, waiter, frame)
    elif await agent_rows.is_agent_member(services.db, result.agent_id, result.room_id):
        await services.events.publish(frame_event(Target.ROOM, result.room_id, frame))


async def publish_agent_info(
    services: Services, *, agent_id: str, room_id: str | None, agent: dict[str, Any]
) -> None:
    """`server:agent_info` to the given room (its settings are per room), else to every room
    the agent is in."""
    frame = proto.agent_info(agent)
    if room_id is not None:
        if not await agent_rows.is_agent_member(services.db, agent_id, room_id):
            gateway_log.warning("Agent %s is not a member of room %s, dropping agent info",
                                agent_id, room_id)  # fmt: skip
            return
        room_ids = [room_id]
    else:
        room_ids = await agent_rows.list_agent_room_ids(services.db, agent_id)
    key = proto.agent_info_key(agent_id)
    await services.events.publish_all(
        [frame_event(Target.ROOM, r, frame, repeat_key=key) for r in room_ids]
    )


async def workspace_answered(services: Services, answer: proto.GatewayWorkspaceResponse) -> None:
    """The answer goes to the user who asked, only while the request is pending."""
    pending = await _take_request(services, answer.request_id)
    if pending is None or pending.get("agentId") != answer.agent_id:
        gateway_log.warning("No pending workspace request for requestId=%s", answer.request_id)
        return
    await to_user(services, str(pending["userId"]), proto.workspace_response(
        agent_id=answer.agent_id, request_id=answer.request_id, response=answer.response,
    ))  # fmt: skip
