"""The relay handlers of both endpoints (client:* requests, gateway:* answers); client_session
and gateway_session register them in their HANDLERS tables.

A client handler's AgentImError becomes that socket's `server:error` (the client endpoint maps
it); a gateway frame about an agent the socket does not hold is logged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from agentim.actions import relays
from agentim.actions.serialize import agent_json
from agentim.protocol import relays as proto
from agentim.services import Services
from agentim.store import agents as agent_rows
from agentim.ws.session import Session

gateway_log = logging.getLogger("GatewayHandler")


class _Endpoint(Protocol):
    services: Services


class _GatewayEndpoint(Protocol):
    services: Services
    gateway_id: str


# client:* ----------------------------------------------------------------------------------------
Handler = Callable[[Any, Session, Any], Awaitable[None]]
RelayAction = Callable[..., Awaitable[dict[str, Any] | None]]


def _answered(action: RelayAction) -> Handler:
    """A handler that runs the relay action for the sender and sends back its answer (a
    refusal, or nothing when the request went on to the gateway)."""

    async def handle(endpoint: _Endpoint, session: Session, message: Any) -> None:
        answer = await action(endpoint.services, user_id=session.user_id, message=message)
        if answer is not None:
            session.send_json(answer)

    return handle


async def query_agent_info(
    endpoint: _Endpoint, session: Session, message: proto.ClientQueryAgentInfo
) -> None:
    row = await relays.query_agent_info(
        endpoint.services, user_id=session.user_id, agent_id=message.agent_id,
        room_id=message.room_id,
    )  # fmt: skip
    if row is not None:  # the gateway is offline: what the database knows
        key = proto.agent_info_key(message.agent_id)
        session.send_json(proto.agent_info(agent_json(row)), repeat_key=key)


async def rewind_room(
    endpoint: _Endpoint, session: Session, message: proto.ClientRewindRoom
) -> None:
    await relays.rewind_room(endpoint.services, user_id=session.user_id, room_id=message.room_id,
                             message_id=message.message_id)  # fmt: skip


_to_gateway: Final = _answered(relays.relay_to_gateway)  # credential and OAuth requests
CLIENT_HANDLERS: Final[dict[type[Any], Handler]] = {
    proto.ClientAgentCommand: _answered(relays.agent_command),
    proto.ClientQueryAgentInfo: query_agent_info,
    proto.ClientRequestWorkspace: _answered(relays.request_workspace),
    proto.ClientRewindRoom: rewind_room,
    proto.ClientListGatewayCredentials: _to_gateway,
    proto.ClientAddGatewayCredential: _to_gateway,
    proto.ClientManageGatewayCredential: _to_gateway,
    proto.ClientStartGatewayOAuth: _to_gateway,
    proto.ClientCompleteGatewayOAuth: _to_gateway,
}


# gateway:* ---------------------------------------------------------------------------------------
def _holds(session: Session, agent_id: str, what: str) -> bool:
    if agent_id in session.agents:
        return True
    gateway_log.warning("Gateway attempted to send %s for unowned agent %s", what, agent_id)
    return False


async def command_result(
    endpoint: _GatewayEndpoint, session: Session, message: proto.GatewayAgentCommandResult
) -> None:
    if _holds(session, message.agent_id, "command result"):
        await relays.command_answered(endpoint.services, message)


async def agent_info(
    endpoint: _GatewayEndpoint, session: Session, message: proto.GatewayAgentInfo
) -> None:
    if not _holds(session, message.agent_id, "agent info"):
        return
    row = await agent_rows.get_agent(endpoint.services.db, message.agent_id)
    if row is None:
        return
    agent = {**agent_json(row), **message.live}  # the gateway's live settings win
    await relays.publish_agent_info(endpoint.services, agent_id=message.agent_id,
                                    room_id=message.room_id, agent=agent)  # fmt: skip


async def workspace_response(
    endpoint: _GatewayEndpoint, session: Session, message: proto.GatewayWorkspaceResponse
) -> None:
    if _holds(session, message.agent_id, "workspace response"):
        await relays.workspace_answered(endpoint.services, message)


async def to_owner(endpoint: _GatewayEndpoint, session: Session, message: Any) -> None:
    """Spawn, credential and OAuth answers: to the gateway owner's client sockets (only the
    owner may send the requests they answer)."""
    gateway_id = endpoint.gateway_id
    if isinstance(message, proto.GatewaySpawnResult):
        frame = proto.spawn_result(gateway_id, message)
    elif isinstance(message, proto.GatewayCredentialList):
        frame = proto.gateway_credential_list(gateway_id, message)
    elif isinstance(message, proto.GatewayCredentialResult):
        frame = proto.gateway_credential_result(message)
    elif isinstance(message, proto.GatewayOAuthUrl):
        frame = proto.gateway_oauth_url(gateway_id, message)
    else:
        frame = proto.gateway_oauth_result(
            gateway_id, request_id=message.request_id, success=message.success,
            error=message.error, credential=message.credential,
        )  # fmt: skip
    await relays.to_user(endpoint.services, session.user_id, frame)


async def rewind_result(  # noqa: ASYNC124 (the endpoint's handler table holds coroutines)
    endpoint: _GatewayEndpoint, session: Session, message: proto.GatewayRewindResult
) -> None:
    if message.success:
        gateway_log.info("Rewind succeeded for agent %s in room %s", message.agent_id,
                         message.room_id)  # fmt: skip
    else:
        gateway_log.warning("Rewind failed for agent %s: %s", message.agent_id, message.error)


GATEWAY_HANDLERS: Final[dict[type[Any], Handler]] = {
    proto.GatewayAgentCommandResult: command_result,
    proto.GatewayAgentInfo: agent_info,
    proto.GatewayWorkspaceResponse: workspace_response,
    proto.GatewaySpawnResult: to_owner,
    proto.GatewayCredentialList: to_owner,
    proto.GatewayCredentialResult: to_owner,
    proto.GatewayOAuthUrl: to_owner,
    proto.GatewayOAuthResult: to_owner,
    proto.GatewayRewindResult: rewind_result,
}
