"""gateway:* messages in (realtime.md §2.4, D17) and the server:* frames of the agent flows.

`decode_gateway` plays the reference's zod union: unknown keys are dropped, and a frame that
matches no schema gives `Invalid` with zod's first issue text, which the session logs.
Lengths are JavaScript's (UTF-16 code units). Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any, Final

import attrs

from agentim.protocol import relays
from agentim.protocol.jsontypes import string_problem, type_name
from agentim.protocol.textrules import utf16_len

MAX_TOKEN_CHARS: Final = 2000
MAX_CHUNK_CHARS: Final = 1_000_000  # ParsedChunk.content (realtime.md §2.1)
MAX_FULL_CONTENT_CHARS: Final = 10_000_000  # message_complete.fullContent
MAX_CHUNKS: Final = 10_000  # message_complete.chunks
MAX_CONVERSATION_ID_CHARS: Final = 100
MAX_TERMINAL_CHARS: Final = 1_000_000
MAX_TOOL_NAME_CHARS: Final = 200  # D17 leaves it open; a tool name is short
DEFAULT_PERMISSION_TIMEOUT_MS: Final = 5 * 60 * 1000  # D17
MIN_PERMISSION_TIMEOUT_MS: Final = 1000  # 631a1ad's schema
MAX_PERMISSION_TIMEOUT_MS: Final = 5 * 60 * 1000  # 631a1ad's PERMISSION_TIMEOUT_MS
AGENT_TYPES: Final = ("claude-code", "codex", "gemini", "generic")  # AgentIM 631a1ad
# Types older gateways may still send, accepted and stored as the type given here: today's web
# client and gateways reject any frame naming a type outside AGENT_TYPES.
LEGACY_AGENT_TYPES: Final = {"cursor": "generic"}
MAX_SLASH_COMMANDS: Final = 100  # gateway:register_agent.agent limits (631a1ad)
MAX_COMMAND_NAME_CHARS: Final = 100
MAX_COMMAND_TEXT_CHARS: Final = 500  # description, usage
COMMAND_SOURCES: Final = ("builtin", "skill")
MAX_MCP_SERVERS: Final = 100
MAX_MCP_SERVER_CHARS: Final = 200
MAX_MODEL_CHARS: Final = 200
MAX_TASK_RESULT_CHARS: Final = 100_000  # gateway:task_update.result (631a1ad)
AGENT_STATUSES: Final = ("online", "offline", "busy", "error")
# 631a1ad's list; the HEAD gateway ends a reply from a git work tree with `workspace_status`
# (content: the JSON WorkspaceStatus, metadata: {workingDirectory}).
CHUNK_TYPES: Final = ("text", "thinking", "tool_use", "tool_result", "error", "workspace_status")
MAX_CHUNK_METADATA_KEYS: Final = 50  # 631a1ad's parsedChunkSchema
MAX_CHUNK_METADATA_CHARS: Final = 100_000  # its JSON text, JavaScript length
MAX_TARGET_AGENT_NAME_CHARS: Final = 200  # an agent name; 631a1ad sets no bound
TASK_STATUSES: Final = ("pending", "in_progress", "completed", "failed", "cancelled")

Chunk = dict[str, Any]  # ParsedChunk: {type, content, metadata?}


@attrs.frozen
class DeviceInfo:
    hostname: str
    platform: str
    arch: str
    node_version: str
    agentim_version: str | None = None  # 631a1ad: the gateway's npm package version


@attrs.frozen
class GatewayAuth:
    token: str
    gateway_id: str
    device_info: DeviceInfo
    protocol_version: str | None = None  # absent (older gateways) or "" counts as current
    ephemeral: bool = False  # 631a1ad: a one-command gateway, hidden from the gateway list


@attrs.frozen
class AgentInfo:
    id: str
    name: str
    type: str
    working_directory: str | None
    capabilities: list[str] | None
    slash_commands: list[dict[str, str]] | None = None  # {name, description, usage, source}
    mcp_servers: list[str] | None = None
    model: str | None = None


@attrs.frozen
class GatewayRegisterAgent:
    agent: AgentInfo


@attrs.frozen
class GatewayUnregisterAgent:
    agent_id: str


@attrs.frozen
class GatewayMessageChunk:
    """`chunk` is None when the hub cannot accept it (D25): `issue` says why, and the stream
    goes on without it; `too_large` marks a chunk over MAX_CHUNK_CHARS (CHUNK_TOO_LARGE)."""

    room_id: str
    agent_id: str
    message_id: str
    chunk: Chunk | None
    issue: str | None = None
    too_large: bool = False


@attrs.frozen
class GatewayMessageComplete:
    """A reply's end. What the hub cannot accept is left out, never the reply (D25):
    `dropped` lists why each bad chunk or field went; `routable` is False when a field that
    routing relies on (depth, conversationId, targetAgentName) was bad, so the reply is stored
    and shown but not routed on."""

    room_id: str
    agent_id: str
    message_id: str
    full_content: str
    chunks: list[Chunk] | None
    conversation_id: str | None
    depth: int | None
    target_agent_name: str | None = None
    dropped: tuple[str, ...] = ()
    routable: bool = True


@attrs.frozen
class GatewayAgentStatus:
    agent_id: str
    status: str
    queue_depth: int | None = None  # 631a1ad: messages waiting for the agent on its gateway


@attrs.frozen
class GatewayTerminalData:
    agent_id: str
    data: str


@attrs.frozen
class GatewayTaskUpdate:
    task_id: str
    status: str
    result: str | None


@attrs.frozen
class GatewayPing:
    ts: int | float


@attrs.frozen
class GatewayPermissionRequest:
    request_id: str
    agent_id: str
    room_id: str
    tool_name: str
    tool_input: Any
    timeout_ms: int


GatewayMessage = (
    GatewayAuth | GatewayRegisterAgent | GatewayUnregisterAgent | GatewayMessageChunk
    | GatewayMessageComplete | GatewayAgentStatus | GatewayTerminalData | GatewayTaskUpdate
    | GatewayPing | GatewayPermissionRequest | relays.GatewayRelay
)  # fmt: skip


@attrs.frozen
class Invalid:
    """The frame matches no gateway:* schema; `issue` is zod's first message."""

    issue: str


class _Issue(Exception):
    pass


def _string(obj: dict[str, Any], key: str, *, min_len: int = 0, max_len: int | None = None) -> str:
    if key not in obj:
        raise _Issue("Required")
    value = obj[key]
    problem = string_problem(value, min_len=min_len, max_len=max_len)
    if problem is not None:
        raise _Issue(problem)
    return value


def _optional_string(obj: dict[str, Any], key: str, *, max_len: int | None = None) -> str | None:
    return None if key not in obj else _string(obj, key, max_len=max_len)


def _enum(obj: dict[str, Any], key: str, values: tuple[str, ...]) -> str:
    if key not in obj:
        raise _Issue("Required")
    value = obj[key]
    if value not in values:
        expected = " | ".join(f"'{v}'" for v in values)
        raise _Issue(f"Invalid enum value. Expected {expected}, received '{value}'")
    return str(value)


def _object(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if key not in obj:
        raise _Issue("Required")
    if not isinstance(value, dict):
        raise _Issue(f"Expected object, received {type_name(value)}")
    return value


def _number(obj: dict[str, Any], key: str) -> int | float:
    value = obj.get(key)
    if key not in obj:
        raise _Issue("Required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Issue(f"Expected number, received {type_name(value)}")
    return value


def _array(obj: dict[str, Any], key: str, *, max_items: int | None = None) -> list[Any] | None:
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, list):
        raise _Issue(f"Expected array, received {type_name(value)}")
    if max_items is not None and len(value) > max_items:
        raise _Issue(f"Array must contain at most {max_items} element(s)")
    return value


def _string_list(
    obj: dict[str, Any], key: str, *, max_items: int | None = None, max_len: int | None = None
) -> list[str] | None:
    value = _array(obj, key, max_items=max_items)
    if value is None:
        return None
    holder: dict[str, Any] = {}
    for item in value:
        holder["item"] = item
        _string(holder, "item", max_len=max_len)
    return value


def _slash_command(value: Any) -> dict[str, str]:
    """One {name, description, usage, source}; unknown keys dropped."""
    if not isinstance(value, dict):
        raise _Issue(f"Expected object, received {type_name(value)}")
    return {
        "name": _string(value, "name", min_len=1, max_len=MAX_COMMAND_NAME_CHARS),
        "description": _string(value, "description", max_len=MAX_COMMAND_TEXT_CHARS),
        "usage": _string(value, "usage", max_len=MAX_COMMAND_TEXT_CHARS),
        "source": _enum(value, "source", COMMAND_SOURCES),
    }


def _slash_commands(obj: dict[str, Any]) -> list[dict[str, str]] | None:
    value = _array(obj, "slashCommands", max_items=MAX_SLASH_COMMANDS)
    return None if value is None else [_slash_command(item) for item in value]


def _agent_type(agent: dict[str, Any]) -> str:
    legacy = LEGACY_AGENT_TYPES.get(agent.get("type"))  # type: ignore[arg-type]
    return legacy if legacy is not None else _enum(agent, "type", AGENT_TYPES)


class _TooLarge(_Issue):
    """A chunk's content over MAX_CHUNK_CHARS."""


def parse_chunk(value: Any, *, measure: bool = True) -> Chunk:
    """A ParsedChunk with unknown keys dropped (realtime.md §2.1, 631a1ad's metadata bounds).

    Args:
        measure: check the metadata's JSON size; False when the whole frame is too small for
            it to pass the bound (the check serialises the metadata: most of a decode's cost).
    """
    if not isinstance(value, dict):
        raise _Issue(f"Expected object, received {type_name(value)}")
    kind = _enum(value, "type", CHUNK_TYPES)
    try:
        content = _string(value, "content", max_len=MAX_CHUNK_CHARS)
    except _Issue as issue:
        too_long = isinstance(value.get("content"), str)
        raise (_TooLarge(str(issue)) if too_long else issue) from None
    chunk: Chunk = {"type": kind, "content": content}
    if "metadata" in value:
        chunk["metadata"] = _metadata(value, measure)
    return chunk


def _metadata(value: dict[str, Any], measure: bool) -> dict[str, Any]:
    metadata = _object(value, "metadata")
    if len(metadata) > MAX_CHUNK_METADATA_KEYS:
        raise _Issue("validation.metadataTooManyKeys")
    if measure and utf16_len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))) > (
        MAX_CHUNK_METADATA_CHARS
    ):
        raise _Issue("validation.metadataTooLarge")
    return metadata


def _auth(obj: dict[str, Any]) -> GatewayAuth:
    token = _string(obj, "token", min_len=1, max_len=MAX_TOKEN_CHARS)
    gateway_id = _string(obj, "gatewayId", min_len=1)
    version = _optional_string(obj, "protocolVersion")
    info = _object(obj, "deviceInfo")
    device = DeviceInfo(
        _string(info, "hostname"), _string(info, "platform"), _string(info, "arch"),
        _string(info, "nodeVersion"), _optional_string(info, "agentimVersion"),
    )  # fmt: skip
    return GatewayAuth(token, gateway_id, device, version, _optional_bool(obj, "ephemeral"))


def _optional_bool(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise _Issue(f"Expected boolean, received {type_name(value)}")
    return value


def _register(obj: dict[str, Any]) -> GatewayRegisterAgent:
    agent = _object(obj, "agent")
    mcp_servers = _string_list(
        agent, "mcpServers", max_items=MAX_MCP_SERVERS, max_len=MAX_MCP_SERVER_CHARS
    )
    return GatewayRegisterAgent(
        AgentInfo(
            id=_string(agent, "id", min_len=1),
            name=_string(agent, "name", min_len=1),
            type=_agent_type(agent),
            working_directory=_optional_string(agent, "workingDirectory"),
            capabilities=_string_list(agent, "capabilities"),
            slash_commands=_slash_commands(agent),
            mcp_servers=mcp_servers,
            model=_optional_string(agent, "model", max_len=MAX_MODEL_CHARS),
        )
    )


def _unregister(obj: dict[str, Any]) -> GatewayUnregisterAgent:
    return GatewayUnregisterAgent(_string(obj, "agentId", min_len=1))


def _stream_ids(obj: dict[str, Any]) -> tuple[str, str, str]:
    return (
        _string(obj, "roomId", min_len=1),
        _string(obj, "agentId", min_len=1),
        _string(obj, "messageId", min_len=1),
    )


def _chunk(obj: dict[str, Any], measure: bool = True) -> GatewayMessageChunk:
    """The stream's ids must hold; a chunk the hub cannot take only drops itself (D25)."""
    ids = _stream_ids(obj)
    if "chunk" not in obj:
        raise _Issue("Required")
    try:
        return GatewayMessageChunk(*ids, parse_chunk(obj["chunk"], measure=measure))
    except _TooLarge as issue:
        return GatewayMessageChunk(*ids, None, str(issue), too_large=True)
    except _Issue as issue:
        return GatewayMessageChunk(*ids, None, str(issue))


def _chunks(obj: dict[str, Any], dropped: list[str], measure: bool) -> list[Chunk] | None:
    """The acceptable chunks in order; each bad one (or a bad list) is noted in `dropped`."""
    if "chunks" not in obj:
        return None
    value = obj["chunks"]
    if not isinstance(value, list):
        dropped.append(f"chunks: Expected array, received {type_name(value)}")
        return None
    if len(value) > MAX_CHUNKS:
        dropped.append(f"chunks: Array must contain at most {MAX_CHUNKS} element(s)")
        return None
    kept: list[Chunk] = []
    for index, item in enumerate(value):
        try:
            kept.append(parse_chunk(item, measure=measure))
        except _Issue as issue:
            dropped.append(f"chunks[{index}]: {issue}")
    return kept


def _depth(obj: dict[str, Any], key: str = "depth") -> int | None:
    """An optional integer ≥ 0 (`depth`, `queueDepth`)."""
    if key not in obj:
        return None
    value = _number(obj, key)
    if isinstance(value, float) and not value.is_integer():
        raise _Issue("Expected integer, received float")
    if value < 0:
        raise _Issue("Number must be greater than or equal to 0")
    return int(value)


def _complete(obj: dict[str, Any], measure: bool = True) -> GatewayMessageComplete:
    """Ids and fullContent must hold; anything else bad is left out (D25)."""
    ids = _stream_ids(obj)
    full_content = _string(obj, "fullContent", max_len=MAX_FULL_CONTENT_CHARS)
    dropped: list[str] = []
    chunks = _chunks(obj, dropped, measure)
    routing = [
        _lenient(obj, "conversationId", dropped, partial(
            _optional_string, key="conversationId", max_len=MAX_CONVERSATION_ID_CHARS)),
        _lenient(obj, "depth", dropped, _depth),
        _lenient(obj, "targetAgentName", dropped, partial(
            _optional_string, key="targetAgentName", max_len=MAX_TARGET_AGENT_NAME_CHARS)),
    ]  # fmt: skip
    conversation_id, depth, target = (value for value, _ in routing)
    return GatewayMessageComplete(
        *ids, full_content=full_content, chunks=chunks, conversation_id=conversation_id,
        depth=depth, target_agent_name=target or None, dropped=tuple(dropped),
        routable=all(ok for _, ok in routing),
    )  # fmt: skip


def _lenient(
    obj: dict[str, Any], key: str, dropped: list[str], parse: Callable[[dict[str, Any]], Any]
) -> tuple[Any, bool]:
    """(value, True), or (None, False) with the issue noted when the field is bad."""
    try:
        return parse(obj), True
    except _Issue as issue:
        dropped.append(f"{key}: {issue}")
        return None, False


def _status(obj: dict[str, Any]) -> GatewayAgentStatus:
    return GatewayAgentStatus(
        _string(obj, "agentId", min_len=1), _enum(obj, "status", AGENT_STATUSES),
        _depth(obj, "queueDepth"),
    )  # fmt: skip


def _terminal(obj: dict[str, Any]) -> GatewayTerminalData:
    return GatewayTerminalData(
        _string(obj, "agentId", min_len=1), _string(obj, "data", max_len=MAX_TERMINAL_CHARS)
    )


def _task(obj: dict[str, Any]) -> GatewayTaskUpdate:
    return GatewayTaskUpdate(
        _string(obj, "taskId", min_len=1),
        _enum(obj, "status", TASK_STATUSES),
        _optional_string(obj, "result", max_len=MAX_TASK_RESULT_CHARS),
    )


def _ping(obj: dict[str, Any]) -> GatewayPing:
    return GatewayPing(_number(obj, "ts"))


def _timeout_ms(obj: dict[str, Any]) -> int:
    """`timeoutMs`: an integer of at least 1000 (631a1ad); absent (D17's older gateways) → 5
    minutes; longer than 631a1ad's 5 minutes is cut to 5 minutes, as 631a1ad's handler does."""
    if obj.get("timeoutMs") is None:
        return DEFAULT_PERMISSION_TIMEOUT_MS
    value = _number(obj, "timeoutMs")
    if isinstance(value, float) and not value.is_integer():
        raise _Issue("Expected integer, received float")
    if value < MIN_PERMISSION_TIMEOUT_MS:
        raise _Issue(f"Number must be greater than or equal to {MIN_PERMISSION_TIMEOUT_MS}")
    return int(min(value, MAX_PERMISSION_TIMEOUT_MS))


def _permission(obj: dict[str, Any]) -> GatewayPermissionRequest:
    return GatewayPermissionRequest(
        request_id=_string(obj, "requestId", min_len=1, max_len=MAX_CONVERSATION_ID_CHARS),
        agent_id=_string(obj, "agentId", min_len=1),
        room_id=_string(obj, "roomId", min_len=1),
        tool_name=_string(obj, "toolName", min_len=1, max_len=MAX_TOOL_NAME_CHARS),
        tool_input=obj.get("toolInput"),
        timeout_ms=_timeout_ms(obj),
    )


_DECODERS: Final[dict[str, Callable[[dict[str, Any]], GatewayMessage]]] = {
    "gateway:auth": _auth,
    "gateway:register_agent": _register,
    "gateway:unregister_agent": _unregister,
    "gateway:message_chunk": _chunk,
    "gateway:message_complete": _complete,
    "gateway:agent_status": _status,
    "gateway:terminal_data": _terminal,
    "gateway:task_update": _task,
    "gateway:ping": _ping,
    "gateway:permission_request": _permission,
    **relays.GATEWAY_DECODERS,  # answers to the client ↔ gateway relays (protocol/relays.py)
}
_DISCRIMINATOR: Final = "Invalid discriminator value. Expected " + " | ".join(
    f"'{kind}'" for kind in _DECODERS
)


# A frame of at most this many characters holds no chunk metadata over its bound: the compact
# JSON of a value is never longer than the value's text in the frame, and a character is at
# most two UTF-16 units.
SMALL_FRAME_CHARS: Final = MAX_CHUNK_METADATA_CHARS // 2
_UNMEASURED: Final[dict[str, Callable[[dict[str, Any]], GatewayMessage]]] = {
    "gateway:message_chunk": partial(_chunk, measure=False),
    "gateway:message_complete": partial(_complete, measure=False),
}


def decode_gateway(
    obj: dict[str, Any], *, frame_chars: int | None = None
) -> GatewayMessage | Invalid:
    """The typed message for a parsed frame, or Invalid with zod's first issue text.

    Args:
        frame_chars: the length of the frame's text, when known (small frames skip measuring
            chunk metadata).
    """
    kind = obj.get("type")
    if not isinstance(kind, str):
        return Invalid(_DISCRIMINATOR)
    small = frame_chars is not None and frame_chars <= SMALL_FRAME_CHARS
    decoder = (_UNMEASURED.get(kind) if small else None) or _DECODERS.get(kind)
    if decoder is None:
        return Invalid(_DISCRIMINATOR)
    try:
        return decoder(obj)
    except (_Issue, relays.Invalid) as issue:
        return Invalid(str(issue))


def message_type(message: GatewayMessage) -> str:
    """The wire type of a decoded message (for logs)."""
    return _TYPES[type(message)]


_TYPES: Final[dict[type[Any], str]] = {
    GatewayAuth: "gateway:auth",
    GatewayRegisterAgent: "gateway:register_agent",
    GatewayUnregisterAgent: "gateway:unregister_agent",
    GatewayMessageChunk: "gateway:message_chunk",
    GatewayMessageComplete: "gateway:message_complete",
    GatewayAgentStatus: "gateway:agent_status",
    GatewayTerminalData: "gateway:terminal_data",
    GatewayTaskUpdate: "gateway:task_update",
    GatewayPing: "gateway:ping",
    GatewayPermissionRequest: "gateway:permission_request",
    **relays.GATEWAY_TYPES,
}


# server:* frames to a gateway (realtime.md §2.5, D17) ----------------------------------------


def gateway_auth_result(error: str | None = None) -> dict[str, Any]:
    if error is None:
        return {"type": "server:gateway_auth_result", "ok": True}
    return {"type": "server:gateway_auth_result", "ok": False, "error": error}


def send_to_agent(
    *, agent_id: str, room_id: str, message_id: str, content: str, sender_name: str,
    sender_type: str, routing_mode: str, conversation_id: str, depth: int,
) -> dict[str, Any]:  # fmt: skip
    return {
        "type": "server:send_to_agent", "agentId": agent_id, "roomId": room_id,
        "messageId": message_id, "content": content, "senderName": sender_name,
        "senderType": sender_type, "routingMode": routing_mode,
        "conversationId": conversation_id, "depth": depth,
    }  # fmt: skip


def remove_agent(agent_id: str) -> dict[str, Any]:
    return {"type": "server:remove_agent", "agentId": agent_id}


def stop_agent(agent_id: str) -> dict[str, Any]:
    return {"type": "server:stop_agent", "agentId": agent_id}


def permission_response(
    request_id: str, agent_id: str, decision: str, deny_reason: str | None = None
) -> dict[str, Any]:
    """`decision`: allow | allowAlways | deny | timeout; `denyReason` only when given."""
    frame = {"type": "server:permission_response", "requestId": request_id, "agentId": agent_id,
             "decision": decision}  # fmt: skip
    if deny_reason:
        frame["denyReason"] = deny_reason
    return frame


def gateway_error(code: str, message: str) -> dict[str, Any]:
    """The off-protocol `server:error` to a gateway (realtime.md §2.5)."""
    return {"type": "server:error", "code": code, "message": message}


# server:* frames to clients from the agent flows (realtime.md §2.3, D17) ---------------------


STATUS_EXTRAS: Final = (("slashCommands", "slash_commands"), ("mcpServers", "mcp_servers"),
                        ("model", "model"))  # fmt: skip


def agent_summary(row: Any) -> dict[str, Any]:
    """`server:agent_status`'s agent: `{id, name, type, status}` plus, when the gateway reported
    them, `slashCommands`, `mcpServers` and `model` (631a1ad). Absent ones are left out, never
    null: today's web client drops a frame with a null there.

    Args:
        row: a mapping with the agents columns; the jsonb ones as JSON text or as decoded values.
    """
    summary = {"id": row["id"], "name": row["name"], "type": row["type"],
               "status": row["status"]}  # fmt: skip
    for key, column in STATUS_EXTRAS:
        value = row.get(column)  # rows selected without these columns have none
        value = json_value(value) if column != "model" else value
        if value is not None:
            summary[key] = value
    return summary


def json_value(value: Any) -> Any:
    """A jsonb column's value: asyncpg hands jsonb over as text; None and garbage → None."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None


def agent_status(row: Any) -> dict[str, Any]:
    return {"type": "server:agent_status", "agent": agent_summary(row)}


def agents_changed() -> dict[str, Any]:
    """To a user's clients: their gateways or agents changed; refetch the lists (631a1ad)."""
    return {"type": "server:agents_changed"}


def message_chunk(
    *, room_id: str, agent_id: str, agent_name: str, message_id: str, chunk: Chunk
) -> dict[str, Any]:
    return {"type": "server:message_chunk", "roomId": room_id, "agentId": agent_id,
            "agentName": agent_name, "messageId": message_id, "chunk": chunk}  # fmt: skip


def agent_message(
    *, message_id: str, room_id: str, agent_id: str, agent_name: str, content: str,
    chunks: list[Chunk] | None, created_at: str, metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """`server:message_complete`'s message (realtime.md §2.3); `chunks` and `metadata`
    (631a1ad: `{targetAgentName}` of an agent-to-agent message) only when given."""
    message: dict[str, Any] = {
        "id": message_id, "roomId": room_id, "senderId": agent_id, "senderType": "agent",
        "senderName": agent_name, "type": "agent_response", "content": content, "mentions": [],
    }  # fmt: skip
    if chunks is not None:
        message["chunks"] = chunks
    message["createdAt"] = created_at
    if metadata:
        message["metadata"] = metadata
    return message


def message_complete(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "server:message_complete", "message": message}


def terminal_data(*, agent_id: str, agent_name: str, room_id: str, data: str) -> dict[str, Any]:
    return {"type": "server:terminal_data", "agentId": agent_id, "agentName": agent_name,
            "roomId": room_id, "data": data}  # fmt: skip


def permission_request(
    *, request_id: str, agent_id: str, agent_name: str, room_id: str, tool_name: str,
    tool_input: Any, expires_at: str,
) -> dict[str, Any]:  # fmt: skip
    return {
        "type": "server:permission_request", "requestId": request_id, "agentId": agent_id,
        "agentName": agent_name, "roomId": room_id, "toolName": tool_name,
        "toolInput": tool_input, "expiresAt": expires_at,
    }  # fmt: skip


def permission_request_expired(request_id: str) -> dict[str, Any]:
    return {"type": "server:permission_request_expired", "requestId": request_id}
