"""What today's AgentIM web client (631a1ad) accepts from the server, restated as data.

The web client checks every frame against its schema of server messages and silently drops a
frame that fails (head-gap E15). These rules say, for each `server:*` type our hub sends to
client sockets, which fields a frame must have, their JSON types, the allowed enum values,
bounds, and where null is allowed; keys not named are allowed (the client ignores them). A rule
is a function `(value, path) -> list of problems`; `check_frame(frame)` applies the right one.

Every `server:*` type the hub's code can build is in exactly one of: SERVER_FRAMES (the client
knows it), NOT_IN_CLIENT_UNION (we send it, that client drops it), GATEWAY_BOUND (only ever sent
to gateway sockets). CLIENT_ONLY lists what the client knows and our hub does not send yet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

Rule = Callable[[Any, str], list[str]]

AGENT_TYPES: Final = ("claude-code", "codex", "gemini", "generic")
AGENT_STATUSES: Final = ("online", "offline", "busy", "error")
SENDER_TYPES: Final = ("user", "agent", "system")
MESSAGE_TYPES: Final = ("text", "system", "agent_response", "terminal")
CHUNK_TYPES: Final = ("text", "thinking", "tool_use", "tool_result", "error", "workspace_status")
TASK_STATUSES: Final = ("pending", "in_progress", "completed", "failed", "cancelled")
MEMBER_TYPES: Final = ("user", "agent")
ROOM_TYPES: Final = ("private", "group")
MEMBER_ROLES: Final = ("owner", "admin", "member")
NOTIFICATION_PREFS: Final = ("all", "mentions", "none")
COMMAND_ROLES: Final = ("member", "admin", "owner")
COMMAND_SOURCES: Final = ("builtin", "skill")
CHUNK_CONTENT_MAX: Final = 1_000_000
METADATA_MAX_KEYS: Final = 50
TOOL_INPUT_MAX_KEYS: Final = 100
TOOL_INPUT_KEY_MAX: Final = 200
TOOL_INPUT_MAX_CHARS: Final = 1_000_000  # JSON text of the whole record
METADATA_MAX_CHARS: Final = 100_000  # JSON text of a chunk's metadata
UNSAFE_KEYS: Final = ("__proto__", "constructor", "prototype")
AGENT_VISIBILITIES: Final = ("private", "all", "whitelist")
CONNECTION_TYPES: Final = ("cli", "api")
PERMISSION_LEVELS: Final = ("interactive", "bypass")
CREDENTIAL_MODES: Final = ("subscription", "api")
MAX_CREDENTIALS: Final = 100
AUTH_URL_MAX: Final = 4096


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _expect(kind: str, value: Any, path: str) -> list[str]:
    found = _kind(value)
    return [] if found == kind else [f"{path}: expected {kind}, got {found}"]


def text(*, min_len: int = 0, max_len: int | None = None) -> Rule:
    def check(value: Any, path: str) -> list[str]:
        problems = _expect("string", value, path)
        if problems:
            return problems
        if len(value) < min_len:
            return [f"{path}: shorter than {min_len}"]
        if max_len is not None and len(value) > max_len:
            return [f"{path}: longer than {max_len}"]
        return []

    return check


def number(value: Any, path: str) -> list[str]:
    return _expect("number", value, path)


def non_negative(value: Any, path: str) -> list[str]:
    problems = number(value, path)
    return problems or ([f"{path}: negative"] if value < 0 else [])


def boolean(value: Any, path: str) -> list[str]:
    return _expect("boolean", value, path)


def one_of(*allowed: str) -> Rule:
    def check(value: Any, path: str) -> list[str]:
        return [] if value in allowed else [f"{path}: {value!r} is not one of {allowed}"]

    return check


def exactly(expected: str) -> Rule:
    return one_of(expected)


def each(item: Rule, *, min_items: int = 0, max_items: int | None = None) -> Rule:
    def check(value: Any, path: str) -> list[str]:
        problems = _expect("array", value, path)
        if problems:
            return problems
        if len(value) < min_items:
            return [f"{path}: fewer than {min_items} items"]
        if max_items is not None and len(value) > max_items:
            return [f"{path}: more than {max_items} items"]
        return [p for i, v in enumerate(value) for p in item(v, f"{path}[{i}]")]

    return check


def record(
    *, max_keys: int | None = None, key_max: int | None = None, max_chars: int | None = None
) -> Rule:
    """A JSON object with any values; optionally bounded in keys, key length and JSON size."""

    def check(value: Any, path: str) -> list[str]:
        problems = _expect("object", value, path)
        if problems:
            return problems
        if max_keys is not None and len(value) > max_keys:
            problems.append(f"{path}: more than {max_keys} keys")
        if key_max is not None and any(len(k) > key_max for k in value):
            problems.append(f"{path}: a key longer than {key_max}")
        # JSON.stringify's length: compact, non-ASCII kept (UTF-16 units differ only beyond BMP)
        if max_chars is not None and len(_compact(value)) > max_chars:
            problems.append(f"{path}: JSON longer than {max_chars}")
        return problems

    return check


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def has_kind(value: Any, path: str) -> list[str]:
    """The client's only check of a workspace answer: a non-null object with a `kind` key."""
    problems = _expect("object", value, path)
    return problems or ([] if "kind" in value else [f"{path}.kind: missing"])


def tool_input(value: Any, path: str) -> list[str]:
    problems = record(max_keys=TOOL_INPUT_MAX_KEYS, key_max=TOOL_INPUT_KEY_MAX,
                      max_chars=TOOL_INPUT_MAX_CHARS)(value, path)  # fmt: skip
    if not problems and any(k in UNSAFE_KEYS for k in value):
        problems.append(f"{path}: an unsafe key")
    return problems


class Field:
    """How a field may appear: required or optional; whether null is allowed."""

    def __init__(self, rule: Rule, *, optional: bool = False, nullable: bool = False) -> None:
        self.rule, self.optional, self.nullable = rule, optional, nullable


def opt(rule: Rule, *, nullable: bool = False) -> Field:
    return Field(rule, optional=True, nullable=nullable)


def shape(**fields: Rule | Field) -> Rule:
    """An object with these fields (extra keys allowed)."""
    spec = {name: f if isinstance(f, Field) else Field(f) for name, f in fields.items()}

    def check(value: Any, path: str) -> list[str]:
        problems = _expect("object", value, path)
        if problems:
            return problems
        for name, field in spec.items():
            where = f"{path}.{name}"
            if name not in value:
                if not field.optional:
                    problems.append(f"{where}: missing")
            elif value[name] is None:
                if not field.nullable:
                    problems.append(f"{where}: null where the client allows none")
            else:
                problems += field.rule(value[name], where)
        return problems

    return check


CHUNK = shape(
    type=one_of(*CHUNK_TYPES),
    content=text(max_len=CHUNK_CONTENT_MAX),
    metadata=opt(record(max_keys=METADATA_MAX_KEYS, max_chars=METADATA_MAX_CHARS)),
)
ATTACHMENT = shape(id=text(), messageId=text(), filename=text(), mimeType=text(), size=number,
                   url=text())  # fmt: skip
REACTION = shape(emoji=text(), userIds=each(text()), usernames=each(text()))
MESSAGE = shape(
    id=text(), roomId=text(), senderId=text(), senderType=one_of(*SENDER_TYPES),
    senderName=text(), type=one_of(*MESSAGE_TYPES), content=text(), replyToId=opt(text()),
    mentions=each(text()), attachments=opt(each(ATTACHMENT)), reactions=opt(each(REACTION)),
    chunks=opt(each(CHUNK)), createdAt=text(), updatedAt=opt(text()),
)  # fmt: skip
SLASH_COMMAND = shape(
    name=text(min_len=1, max_len=100), description=text(max_len=500), usage=text(max_len=500),
    source=one_of(*COMMAND_SOURCES),
)  # fmt: skip
AGENT_STATUS_AGENT = shape(
    id=text(), name=text(), type=one_of(*AGENT_TYPES), status=one_of(*AGENT_STATUSES),
    slashCommands=opt(each(SLASH_COMMAND)), mcpServers=opt(each(text())), model=opt(text()),
)  # fmt: skip
TASK = shape(
    id=text(), roomId=text(), title=text(), description=text(), status=one_of(*TASK_STATUSES),
    result=opt(text()), dueDate=opt(text()), assigneeId=opt(text()),
    assigneeType=opt(one_of(*MEMBER_TYPES)), createdById=text(), createdAt=text(),
    updatedAt=text(),
)  # fmt: skip
ROOM = shape(
    id=text(), name=text(), type=one_of(*ROOM_TYPES), broadcastMode=boolean,
    systemPrompt=opt(text()), routerId=opt(text(), nullable=True),
    agentCommandRole=opt(one_of(*COMMAND_ROLES)), createdById=text(),
    pinnedAt=opt(text(), nullable=True), archivedAt=opt(text(), nullable=True),
    createdAt=text(), updatedAt=text(),
)  # fmt: skip
MEMBER = shape(
    roomId=text(), memberId=text(), memberType=one_of(*MEMBER_TYPES), role=one_of(*MEMBER_ROLES),
    roleDescription=opt(text()), notificationPref=opt(one_of(*NOTIFICATION_PREFS)),
    pinnedAt=opt(text()), archivedAt=opt(text()), lastReadAt=opt(text()), joinedAt=text(),
)  # fmt: skip

DEVICE_INFO = shape(hostname=text(), platform=text(), arch=text(), nodeVersion=text(),
                    agentimVersion=opt(text()))  # fmt: skip
MODEL_OPTION = shape(value=text(max_len=200), displayName=text(max_len=200),
                     description=opt(text(max_len=500)))  # fmt: skip
# server:agent_info's agent: the whole agent object the client keeps (631a1ad's agentSchema)
AGENT = shape(
    id=text(), name=text(), type=one_of(*AGENT_TYPES), status=one_of(*AGENT_STATUSES),
    visibility=opt(one_of(*AGENT_VISIBILITIES)), gatewayId=text(), workingDirectory=opt(text()),
    capabilities=opt(each(text())), connectionType=opt(one_of(*CONNECTION_TYPES)),
    deviceInfo=opt(DEVICE_INFO), ownerName=opt(text()), slashCommands=opt(each(SLASH_COMMAND)),
    mcpServers=opt(each(text())), model=opt(text()), thinkingMode=opt(text()),
    effortLevel=opt(text()), sessionCostUSD=opt(non_negative),
    availableModels=opt(each(text())), availableModelInfo=opt(each(MODEL_OPTION)),
    availableEffortLevels=opt(each(text())), availableThinkingModes=opt(each(text())),
    planMode=opt(boolean), permissionLevel=opt(one_of(*PERMISSION_LEVELS)),
    lastSeenAt=opt(text()), createdAt=text(), updatedAt=text(),
)  # fmt: skip
CREDENTIAL_INFO = shape(
    id=text(), name=text(), mode=one_of(*CREDENTIAL_MODES), hasApiKey=boolean,
    hasOAuthData=opt(boolean), baseUrl=opt(text()), model=opt(text()), isDefault=boolean,
    createdAt=text(),
)  # fmt: skip
SPAWN_CREDENTIAL = shape(id=text(), name=text(), mode=one_of(*CREDENTIAL_MODES),
                         isDefault=boolean)  # fmt: skip
CREDENTIAL_REF = shape(id=text(), name=text())
ID = text(min_len=1)  # the newer frames insist on non-empty ids

# server:* type → the frame's rule (`type` itself is checked by the lookup).
SERVER_FRAMES: Final[Mapping[str, Rule]] = {
    "server:auth_result": shape(ok=boolean, error=opt(text()), userId=opt(text())),
    "server:new_message": shape(message=MESSAGE),
    "server:message_chunk": shape(
        roomId=text(), agentId=text(), agentName=text(), messageId=text(), chunk=CHUNK
    ),
    "server:message_complete": shape(message=MESSAGE),
    "server:message_edited": shape(message=MESSAGE),
    "server:message_deleted": shape(roomId=text(), messageId=text()),
    "server:typing": shape(roomId=text(), userId=text(), username=text()),
    "server:agent_status": shape(agent=AGENT_STATUS_AGENT),
    "server:task_update": shape(task=TASK),
    "server:room_update": shape(room=ROOM, members=opt(each(MEMBER))),
    "server:room_removed": shape(roomId=text()),
    "server:terminal_data": shape(agentId=text(), agentName=text(), roomId=text(), data=text()),
    "server:read_receipt": shape(roomId=text(), userId=text(), username=text(), lastReadAt=text()),
    "server:presence": shape(userId=text(), username=text(), online=boolean),
    "server:reaction_update": shape(roomId=text(), messageId=text(), reactions=each(REACTION)),
    "server:permission_request": shape(
        requestId=text(),
        agentId=text(),
        agentName=text(),
        roomId=text(),
        toolName=text(),
        toolInput=tool_input,
        expiresAt=text(),
    ),
    "server:permission_request_expired": shape(requestId=text()),
    "server:pong": shape(ts=number),
    "server:error": shape(code=text(), message=text()),
    "server:agent_command_result": shape(
        agentId=text(), roomId=text(), command=text(), success=boolean, message=opt(text())
    ),
    "server:agent_info": shape(agent=AGENT),
    "server:workspace_response": shape(agentId=text(), requestId=text(), response=has_kind),
    "server:room_cleared": shape(roomId=ID, clearedAt=ID),
    "server:room_rewound": shape(
        roomId=ID, messageId=ID, removedMessageIds=each(ID, min_items=1), messageContent=text()
    ),
    "server:spawn_result": shape(
        requestId=ID,
        gatewayId=ID,
        success=boolean,
        agentId=opt(text()),
        error=opt(text()),
        credentials=opt(each(SPAWN_CREDENTIAL)),
    ),
    "server:gateway_credential_list": shape(
        gatewayId=ID, agentType=ID, credentials=each(CREDENTIAL_INFO, max_items=MAX_CREDENTIALS)
    ),
    "server:gateway_credential_result": shape(
        requestId=ID, success=boolean, error=opt(text()), credential=opt(CREDENTIAL_REF)
    ),
    "server:gateway_oauth_url": shape(
        gatewayId=ID, requestId=ID, authUrl=text(min_len=1, max_len=AUTH_URL_MAX)
    ),
    "server:gateway_oauth_result": shape(
        gatewayId=ID,
        requestId=ID,
        success=boolean,
        error=opt(text()),
        credential=opt(CREDENTIAL_REF),
    ),
}
# Sent by AgentIM 631a1ad's own server and typed in its protocol, yet missing from the web
# client's schema union, so that client drops it whatever it holds (an upstream omission; we
# send it for clients that do take it). Its frame is just the type.
NOT_IN_CLIENT_UNION: Final[Mapping[str, Rule]] = {"server:agents_changed": shape()}
# In the client's union, not sent by our hub yet (none today).
CLIENT_ONLY: Final[frozenset[str]] = frozenset()
# Sent only to gateway sockets (631a1ad's serverGatewayMessageSchema side): never checked here.
# server:error goes to both kinds of socket and is checked as a client frame.
GATEWAY_BOUND: Final = frozenset({
    "server:gateway_auth_result", "server:send_to_agent", "server:room_context",
    "server:stop_agent", "server:remove_agent", "server:permission_response",
    "server:agent_command", "server:query_agent_info", "server:request_workspace",
    "server:spawn_agent", "server:list_credentials", "server:add_credential",
    "server:manage_credential", "server:start_oauth", "server:complete_oauth",
    "server:rewind_agent",
})  # fmt: skip
_TYPE_LITERAL: Final = re.compile(r'"(server:[a-z_]+)"')


def builder_types(package: Path | None = None) -> set[str]:
    """Every `"server:…"` string literal in the hub's code: the types it can send."""
    root = package or Path(__file__).resolve().parents[2] / "agentim"
    return {t for path in root.rglob("*.py") for t in _TYPE_LITERAL.findall(path.read_text())}


def client_bound_types(package: Path | None = None) -> set[str]:
    """What the hub can send to client sockets: the types that must pass these rules."""
    return builder_types(package) - GATEWAY_BOUND


def check_frame(frame: Any) -> list[str]:
    """Why the 631a1ad web client would drop this frame; [] when it would accept it."""
    if not isinstance(frame, dict):
        return [f"frame: expected object, got {_kind(frame)}"]
    kind = frame.get("type")
    rule = SERVER_FRAMES.get(kind) or NOT_IN_CLIENT_UNION.get(kind)  # type: ignore[arg-type]
    if rule is None:
        return [f"type: {kind!r} is no server message the client knows"]
    return rule(frame, str(kind))
