"""POST /api/agents/spawn (head-gap A13): ask one of the caller's gateways to start an agent.

The answer comes later over the caller's client sockets as `server:spawn_result`; this route only
says whether the request reached a connected gateway (503 when it is offline).
"""

from __future__ import annotations

from typing import Any, Final

from quart import Blueprint, Response

from agentim.actions import relays
from agentim.errors import AgentImError, ValidationFailed
from agentim.http._request import json_body, ok, principal, require_auth, services
from agentim.protocol.jsontypes import type_name
from agentim.protocol.textrules import utf16_len

blueprint = Blueprint("spawn", __name__)

SPAWN_AGENT_TYPES: Final = ("claude-code", "codex", "gemini", "generic")  # 631a1ad's AGENT_TYPES
MAX_NAME_CHARS: Final = 100
MISSING: Final = "Missing required fields: gatewayId, agentType, name"
BAD_NAME: Final = "Name must be 1-100 non-empty characters"


def _required(body: dict[str, Any]) -> tuple[str, str, str]:
    values = [body.get(key) for key in ("gatewayId", "agentType", "name")]
    if not all(isinstance(value, str) and value for value in values):
        raise AgentImError(400, MISSING)
    gateway_id, agent_type, name = (str(value) for value in values)
    if agent_type not in SPAWN_AGENT_TYPES:
        raise AgentImError(400, f"Invalid agent type: {agent_type}")
    if utf16_len(name) > MAX_NAME_CHARS or not name.strip():
        raise AgentImError(400, BAD_NAME)
    return gateway_id, agent_type, name


def _optional(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value or None  # an empty string is no value, as the reference's `?.` treats it
    raise ValidationFailed([{"field": key, "message": f"Expected string, received "
                                                     f"{type_name(value)}"}])  # fmt: skip


@blueprint.post("/api/agents/spawn")
@require_auth
async def spawn_agent() -> Response:
    body = await json_body()
    if not isinstance(body, dict):
        raise AgentImError(400, MISSING)
    gateway_id, agent_type, name = _required(body)
    await relays.spawn_agent(
        services(), user_id=principal().user_id, gateway_id=gateway_id, agent_type=agent_type,
        name=name, working_directory=_optional(body, "workingDirectory"),
        credential_id=_optional(body, "credentialId"),
    )  # fmt: skip
    return ok()
