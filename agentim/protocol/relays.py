"""The relay messages between clients and gateways (head-gap B3-B7, B10-B16, B21-B22, B28).

client:* requests in, gateway:* answers in, and the server:* frames both ways. Decoders follow
zod as protocol/client.py and protocol/gateway.py do (unknown keys dropped, lengths in UTF-16
units, a wrong shape raises `Invalid` with zod's first issue text); those modules register the
decoders below in their dispatch tables. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final, TypeVar

import attrs

from agentim.protocol.jsontypes import string_problem, type_name

MAX_COMMAND_CHARS: Final = 100
MAX_ARGS_CHARS: Final = 10_000
MAX_COMMAND_MESSAGE_CHARS: Final = 10_000
MAX_PATH_CHARS: Final = 4096
MAX_AGENT_TYPE_CHARS: Final = 50
MAX_NAME_CHARS: Final = 100
MAX_API_KEY_CHARS: Final = 2000
MAX_BASE_URL_CHARS: Final = 500
MAX_MODEL_CHARS: Final = 200
MAX_CREDENTIAL_ID_CHARS: Final = 50
MAX_URL_CHARS: Final = 4096
MAX_CREDENTIALS: Final = 100
CREDENTIAL_MODES: Final = ("api", "subscription")
CREDENTIAL_KINDS: Final = ("subscription", "api")  # the order zod prints for answers
CREDENTIAL_ACTIONS: Final = ("rename", "delete", "set_default")
WORKSPACE_REQUESTS: Final = ("status", "tree", "file")
WORKSPACE_ANSWERS: Final = ("status", "tree", "file", "error")
COMMAND_SOURCES: Final = ("builtin", "skill")
PERMISSION_LEVELS: Final = ("interactive", "bypass")
ENTRY_TYPES: Final = ("file", "directory")


class Invalid(Exception):
    """The frame does not match its type's schema; the text is zod's first issue."""


# client:* requests ---------------------------------------------------------------------------
@attrs.frozen
class ClientAgentCommand:
    agent_id: str
    room_id: str
    command: str
    args: str


@attrs.frozen
class ClientQueryAgentInfo:
    agent_id: str
    room_id: str | None


@attrs.frozen
class ClientRequestWorkspace:
    room_id: str
    agent_id: str
    request: dict[str, Any]  # {kind: status} | {kind: tree, path?} | {kind: file, path}


@attrs.frozen
class ClientRewindRoom:
    room_id: str
    message_id: str


@attrs.frozen
class ClientListGatewayCredentials:
    gateway_id: str
    agent_type: str


@attrs.frozen
class ClientAddGatewayCredential:
    gateway_id: str
    agent_type: str
    name: str
    mode: str
    api_key: str | None = attrs.field(repr=False)  # a secret: never in a log line
    base_url: str | None
    model: str | None


@attrs.frozen
class ClientManageGatewayCredential:
    gateway_id: str
    agent_type: str
    credential_id: str
    action: str
    name: str | None


@attrs.frozen
class ClientStartGatewayOAuth:
    gateway_id: str
    agent_type: str
    credential_name: str


@attrs.frozen
class ClientCompleteGatewayOAuth:
    gateway_id: str
    request_id: str
    callback_url: str = attrs.field(repr=False)  # carries the OAuth code


ClientRelay = (
    ClientAgentCommand | ClientQueryAgentInfo | ClientRequestWorkspace | ClientRewindRoom
    | ClientListGatewayCredentials | ClientAddGatewayCredential | ClientManageGatewayCredential
    | ClientStartGatewayOAuth | ClientCompleteGatewayOAuth
)  # fmt: skip
GatewayTargeted = (
    ClientListGatewayCredentials | ClientAddGatewayCredential | ClientManageGatewayCredential
    | ClientStartGatewayOAuth | ClientCompleteGatewayOAuth
)  # fmt: skip


# gateway:* answers ---------------------------------------------------------------------------
@attrs.frozen
class GatewayAgentCommandResult:
    agent_id: str
    room_id: str
    command: str
    success: bool
    message: str | None


@attrs.frozen
class GatewayAgentInfo:
    agent_id: str
    room_id: str | None
    live: dict[str, Any]  # the validated live fields (slashCommands, model, …), camelCase


@attrs.frozen
class GatewaySpawnResult:
    request_id: str
    success: bool
    agent_id: str | None
    error: str | None
    credentials: list[dict[str, Any]] | None


@attrs.frozen
class GatewayWorkspaceResponse:
    agent_id: str
    request_id: str
    response: dict[str, Any]


@attrs.frozen
class GatewayCredentialList:
    request_id: str
    agent_type: str
    credentials: list[dict[str, Any]]


@attrs.frozen
class GatewayCredentialResult:
    request_id: str
    success: bool
    error: str | None
    credential: dict[str, Any] | None


@attrs.frozen
class GatewayOAuthUrl:
    request_id: str
    auth_url: str = attrs.field(repr=False)  # carries OAuth state
    auto_callback: bool | None = None


@attrs.frozen
class GatewayOAuthResult:
    request_id: str
    success: bool
    error: str | None
    credential: dict[str, Any] | None


_CredentialAnswer = TypeVar("_CredentialAnswer", GatewayCredentialResult, GatewayOAuthResult)


@attrs.frozen
class GatewayRewindResult:
    agent_id: str
    room_id: str
    success: bool
    error: str | None


GatewayRelay = (
    GatewayAgentCommandResult | GatewayAgentInfo | GatewaySpawnResult | GatewayWorkspaceResponse
    | GatewayCredentialList | GatewayCredentialResult | GatewayOAuthUrl | GatewayOAuthResult
    | GatewayRewindResult
)  # fmt: skip


# zod-like field readers ------------------------------------------------------------------------
def _present(obj: dict[str, Any], key: str) -> Any:
    if key not in obj:
        raise Invalid("Required")
    return obj[key]


def _str(obj: dict[str, Any], key: str, *, min_len: int = 0, max_len: int | None = None) -> str:
    return _check_str(_present(obj, key), min_len=min_len, max_len=max_len)


def _opt_str(obj: dict[str, Any], key: str, *, min_len: int = 0,
             max_len: int | None = None) -> str | None:  # fmt: skip
    return None if key not in obj else _str(obj, key, min_len=min_len, max_len=max_len)


def _check_str(value: Any, *, min_len: int = 0, max_len: int | None = None) -> str:
    problem = string_problem(value, min_len=min_len, max_len=max_len)
    if problem is not None:
        raise Invalid(problem)
    return value


def _bool(obj: dict[str, Any], key: str) -> bool:
    return _check_bool(_present(obj, key))


def _check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"Expected boolean, received {type_name(value)}")
    return value


def _opt_bool(obj: dict[str, Any], key: str) -> bool | None:
    return None if key not in obj else _check_bool(obj[key])


def _number(value: Any, *, nonnegative: bool = False) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"Expected number, received {type_name(value)}")
    if nonnegative and value < 0:
        raise Invalid("Number must be greater than or equal to 0")
    return value


def _enum(value: Any, values: tuple[str, ...]) -> str:
    if value not in values:
        expected = " | ".join(f"'{v}'" for v in values)
        raise Invalid(f"Invalid enum value. Expected {expected}, received '{value}'")
    return str(value)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"Expected object, received {type_name(value)}")
    return value


def _array(value: Any, item: Callable[[Any], Any], *, max_items: int | None = None) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(f"Expected array, received {type_name(value)}")
    if max_items is not None and len(value) > max_items:
        raise Invalid(f"Array must contain at most {max_items} element(s)")
    return [item(v) for v in value]


def _discriminator(value: dict[str, Any], kinds: tuple[str, ...]) -> str:
    kind = value.get("kind")
    if kind not in kinds:
        expected = " | ".join(f"'{k}'" for k in kinds)
        raise Invalid(f"Invalid discriminator value. Expected {expected}")
    return str(kind)


def _strings(max_len: int) -> Callable[[Any], str]:
    return partial(_check_str, max_len=max_len)


def _limited(item: Callable[[Any], Any], max_items: int) -> Callable[[Any], list[Any]]:
    return partial(_array, item=item, max_items=max_items)


# client decoders (the second argument is client.py's max_content; unused here) ----------------
def _agent_command(obj: dict[str, Any], _max_content: int) -> ClientAgentCommand:
    agent_id, room_id = _str(obj, "agentId", min_len=1), _str(obj, "roomId", min_len=1)
    command = _str(obj, "command", min_len=1, max_len=MAX_COMMAND_CHARS)
    args = _opt_str(obj, "args", max_len=MAX_ARGS_CHARS)
    return ClientAgentCommand(agent_id, room_id, command, args or "")


def _query_agent_info(obj: dict[str, Any], _max_content: int) -> ClientQueryAgentInfo:
    return ClientQueryAgentInfo(_str(obj, "agentId", min_len=1), _opt_str(obj, "roomId", min_len=1))


def _workspace_request(value: Any) -> dict[str, Any]:
    request = _object(value)
    kind = _discriminator(request, WORKSPACE_REQUESTS)
    if kind == "status":
        return {"kind": kind}
    if kind == "tree":
        path = _opt_str(request, "path", max_len=MAX_PATH_CHARS)
        return {"kind": kind} if path is None else {"kind": kind, "path": path}
    return {"kind": kind, "path": _str(request, "path", min_len=1, max_len=MAX_PATH_CHARS)}


def _request_workspace(obj: dict[str, Any], _max_content: int) -> ClientRequestWorkspace:
    room_id, agent_id = _str(obj, "roomId", min_len=1), _str(obj, "agentId", min_len=1)
    return ClientRequestWorkspace(room_id, agent_id, _workspace_request(_present(obj, "request")))


def _rewind_room(obj: dict[str, Any], _max_content: int) -> ClientRewindRoom:
    return ClientRewindRoom(_str(obj, "roomId", min_len=1), _str(obj, "messageId", min_len=1))


def _gateway_and_type(obj: dict[str, Any]) -> tuple[str, str]:
    return (
        _str(obj, "gatewayId", min_len=1),
        _str(obj, "agentType", min_len=1, max_len=MAX_AGENT_TYPE_CHARS),
    )


def _list_credentials(obj: dict[str, Any], _max_content: int) -> ClientListGatewayCredentials:
    return ClientListGatewayCredentials(*_gateway_and_type(obj))


def _add_credential(obj: dict[str, Any], _max_content: int) -> ClientAddGatewayCredential:
    gateway_id, agent_type = _gateway_and_type(obj)
    return ClientAddGatewayCredential(
        gateway_id, agent_type,
        name=_str(obj, "name", min_len=1, max_len=MAX_NAME_CHARS),
        mode=_enum(obj["mode"], CREDENTIAL_MODES) if "mode" in obj else "api",
        api_key=_opt_str(obj, "apiKey", min_len=1, max_len=MAX_API_KEY_CHARS),
        base_url=_opt_str(obj, "baseUrl", max_len=MAX_BASE_URL_CHARS),
        model=_opt_str(obj, "model", max_len=MAX_MODEL_CHARS),
    )  # fmt: skip


def _manage_credential(obj: dict[str, Any], _max_content: int) -> ClientManageGatewayCredential:
    gateway_id, agent_type = _gateway_and_type(obj)
    return ClientManageGatewayCredential(
        gateway_id, agent_type,
        credential_id=_str(obj, "credentialId", min_len=1, max_len=MAX_CREDENTIAL_ID_CHARS),
        action=_enum(_present(obj, "action"), CREDENTIAL_ACTIONS),
        name=_opt_str(obj, "name", min_len=1, max_len=MAX_NAME_CHARS),
    )  # fmt: skip


def _start_oauth(obj: dict[str, Any], _max_content: int) -> ClientStartGatewayOAuth:
    gateway_id, agent_type = _gateway_and_type(obj)
    name = _str(obj, "credentialName", min_len=1, max_len=MAX_NAME_CHARS)
    return ClientStartGatewayOAuth(gateway_id, agent_type, name)


def _complete_oauth(obj: dict[str, Any], _max_content: int) -> ClientCompleteGatewayOAuth:
    return ClientCompleteGatewayOAuth(
        _str(obj, "gatewayId", min_len=1),
        _str(obj, "requestId", min_len=1),
        _str(obj, "callbackUrl", min_len=1, max_len=MAX_URL_CHARS),
    )


CLIENT_DECODERS: Final[dict[str, Callable[[dict[str, Any], int], ClientRelay]]] = {
    "client:agent_command": _agent_command,
    "client:query_agent_info": _query_agent_info,
    "client:request_workspace": _request_workspace,
    "client:rewind_room": _rewind_room,
    "client:list_gateway_credentials": _list_credentials,
    "client:add_gateway_credential": _add_credential,
    "client:manage_gateway_credential": _manage_credential,
    "client:start_gateway_oauth": _start_oauth,
    "client:complete_gateway_oauth": _complete_oauth,
}
CLIENT_TYPES: Final[dict[type[Any], str]] = {
    ClientAgentCommand: "client:agent_command",
    ClientQueryAgentInfo: "client:query_agent_info",
    ClientRequestWorkspace: "client:request_workspace",
    ClientRewindRoom: "client:rewind_room",
    ClientListGatewayCredentials: "client:list_gateway_credentials",
    ClientAddGatewayCredential: "client:add_gateway_credential",
    ClientManageGatewayCredential: "client:manage_gateway_credential",
    ClientStartGatewayOAuth: "client:start_gateway_oauth",
    ClientCompleteGatewayOAuth: "client:complete_gateway_oauth",
}


# gateway decoders ------------------------------------------------------------------------------
def _command_result(obj: dict[str, Any]) -> GatewayAgentCommandResult:
    return GatewayAgentCommandResult(
        agent_id=_str(obj, "agentId", min_len=1),
        room_id=_str(obj, "roomId", min_len=1),
        command=_str(obj, "command", min_len=1, max_len=MAX_COMMAND_CHARS),
        success=_bool(obj, "success"),
        message=_opt_str(obj, "message", max_len=MAX_COMMAND_MESSAGE_CHARS),
    )


def _slash_command(value: Any) -> dict[str, Any]:
    item = _object(value)
    return {
        "name": _str(item, "name", min_len=1, max_len=100),
        "description": _str(item, "description", max_len=500),
        "usage": _str(item, "usage", max_len=500),
        "source": _enum(_present(item, "source"), COMMAND_SOURCES),
    }


def _model_option(value: Any) -> dict[str, Any]:
    item = _object(value)
    option = {"value": _str(item, "value", max_len=200),
              "displayName": _str(item, "displayName", max_len=200)}  # fmt: skip
    description = _opt_str(item, "description", max_len=500)
    if description is not None:
        option["description"] = description
    return option


# The optional live fields of gateway:agent_info, in the reference's order: key → reader.
_INFO_FIELDS: Final[dict[str, Callable[[Any], Any]]] = {
    "model": _strings(200),
    "thinkingMode": _strings(100),
    "effortLevel": _strings(50),
    "sessionCostUSD": partial(_number, nonnegative=True),
    "availableModels": _limited(_strings(200), 50),
    "availableModelInfo": _limited(_model_option, 50),
    "availableEffortLevels": _limited(_strings(50), 20),
    "availableThinkingModes": _limited(_strings(100), 20),
    "planMode": _check_bool,
    "permissionLevel": partial(_enum, values=PERMISSION_LEVELS),
}


def _agent_info(obj: dict[str, Any]) -> GatewayAgentInfo:
    agent_id, room_id = _str(obj, "agentId", min_len=1), _opt_str(obj, "roomId", min_len=1)
    live: dict[str, Any] = {
        "slashCommands": _array(_present(obj, "slashCommands"), _slash_command, max_items=100),
        "mcpServers": _array(_present(obj, "mcpServers"), _strings(200), max_items=100),
    }
    for key, read in _INFO_FIELDS.items():
        if key in obj:
            live[key] = read(obj[key])
    return GatewayAgentInfo(agent_id, room_id, live)


def _spawn_credential(value: Any) -> dict[str, Any]:
    item = _object(value)
    return {"id": _str(item, "id"), "name": _str(item, "name"),
            "mode": _enum(_present(item, "mode"), CREDENTIAL_KINDS),
            "isDefault": _bool(item, "isDefault")}  # fmt: skip


def _spawn_result(obj: dict[str, Any]) -> GatewaySpawnResult:
    credentials = obj.get("credentials")
    return GatewaySpawnResult(
        request_id=_str(obj, "requestId", min_len=1),
        success=_bool(obj, "success"),
        agent_id=_opt_str(obj, "agentId"),
        error=_opt_str(obj, "error"),
        credentials=None if "credentials" not in obj else _array(credentials, _spawn_credential),
    )


def _entry(value: Any) -> dict[str, Any]:
    item = _object(value)
    entry: dict[str, Any] = {"name": _str(item, "name"),
                             "type": _enum(_present(item, "type"), ENTRY_TYPES)}  # fmt: skip
    if "size" in item:
        entry["size"] = _number(item["size"])
    return entry


def _workspace_answer(value: Any) -> dict[str, Any]:
    answer = _object(value)
    kind = _discriminator(answer, WORKSPACE_ANSWERS)
    if kind == "status":
        data = _present(answer, "data")
        return {"kind": kind, "data": None if data is None else _object(data)}
    if kind == "tree":
        entries = _array(_present(answer, "entries"), _entry)
        return {"kind": kind, "path": _str(answer, "path"), "entries": entries}
    if kind == "file":
        return {"kind": kind, "path": _str(answer, "path"), "content": _str(answer, "content"),
                "size": _number(_present(answer, "size")),
                "truncated": _bool(answer, "truncated")}  # fmt: skip
    return {"kind": kind, "message": _str(answer, "message")}


def _workspace_response(obj: dict[str, Any]) -> GatewayWorkspaceResponse:
    return GatewayWorkspaceResponse(
        _str(obj, "agentId", min_len=1),
        _str(obj, "requestId", min_len=1),
        _workspace_answer(_present(obj, "response")),
    )


def _credential_info(value: Any) -> dict[str, Any]:
    item = _object(value)
    info: dict[str, Any] = {
        "id": _str(item, "id"), "name": _str(item, "name"),
        "mode": _enum(_present(item, "mode"), CREDENTIAL_KINDS),
        "hasApiKey": _bool(item, "hasApiKey"),
        "hasOAuthData": _opt_bool(item, "hasOAuthData") or False,  # zod's default(false)
    }  # fmt: skip
    for key in ("baseUrl", "model"):
        text = _opt_str(item, key)
        if text is not None:
            info[key] = text
    info["isDefault"] = _bool(item, "isDefault")
    info["createdAt"] = _str(item, "createdAt")
    return info


def _credential_list(obj: dict[str, Any]) -> GatewayCredentialList:
    return GatewayCredentialList(
        _str(obj, "requestId", min_len=1),
        _str(obj, "agentType", min_len=1),
        _array(_present(obj, "credentials"), _credential_info, max_items=MAX_CREDENTIALS),
    )


def _credential_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    if "credential" not in obj:
        return None
    item = _object(obj["credential"])
    return {"id": _str(item, "id"), "name": _str(item, "name")}


def _credential_answer(answer: type[_CredentialAnswer], obj: dict[str, Any]) -> _CredentialAnswer:
    """gateway:credential_result and gateway:oauth_result carry the same fields."""
    return answer(
        _str(obj, "requestId", min_len=1),
        _bool(obj, "success"),
        _opt_str(obj, "error"),
        _credential_ref(obj),
    )


def _oauth_url(obj: dict[str, Any]) -> GatewayOAuthUrl:
    return GatewayOAuthUrl(
        _str(obj, "requestId", min_len=1),
        _str(obj, "authUrl", min_len=1, max_len=MAX_URL_CHARS),
        _opt_bool(obj, "autoCallback"),
    )


def _rewind_result(obj: dict[str, Any]) -> GatewayRewindResult:
    return GatewayRewindResult(
        _str(obj, "agentId", min_len=1),
        _str(obj, "roomId", min_len=1),
        _bool(obj, "success"),
        _opt_str(obj, "error"),
    )


GATEWAY_DECODERS: Final[dict[str, Callable[[dict[str, Any]], GatewayRelay]]] = {
    "gateway:agent_command_result": _command_result,
    "gateway:agent_info": _agent_info,
    "gateway:spawn_result": _spawn_result,
    "gateway:credential_list": _credential_list,
    "gateway:credential_result": partial(_credential_answer, GatewayCredentialResult),
    "gateway:oauth_url": _oauth_url,
    "gateway:oauth_result": partial(_credential_answer, GatewayOAuthResult),
    "gateway:workspace_response": _workspace_response,
    "gateway:rewind_result": _rewind_result,
}
GATEWAY_TYPES: Final[dict[type[Any], str]] = {
    GatewayAgentCommandResult: "gateway:agent_command_result",
    GatewayAgentInfo: "gateway:agent_info",
    GatewaySpawnResult: "gateway:spawn_result",
    GatewayCredentialList: "gateway:credential_list",
    GatewayCredentialResult: "gateway:credential_result",
    GatewayOAuthUrl: "gateway:oauth_url",
    GatewayOAuthResult: "gateway:oauth_result",
    GatewayWorkspaceResponse: "gateway:workspace_response",
    GatewayRewindResult: "gateway:rewind_result",
}


# server:* frames ---------------------------------------------------------------------------
def _without_none(frame: dict[str, Any]) -> dict[str, Any]:
    """JSON.stringify drops `undefined` members: absent optional fields stay absent."""
    return {key: value for key, value in frame.items() if value is not None}


def agent_command(
    *, agent_id: str, room_id: str, command: str, args: str, user_id: str
) -> dict[str, Any]:
    return {"type": "server:agent_command", "agentId": agent_id, "roomId": room_id,
            "command": command, "args": args, "userId": user_id}  # fmt: skip


def agent_command_result(
    *, agent_id: str, room_id: str, command: str, success: bool, message: str | None
) -> dict[str, Any]:
    return _without_none({"type": "server:agent_command_result", "agentId": agent_id,
                          "roomId": room_id, "command": command, "success": success,
                          "message": message})  # fmt: skip


def query_agent_info(agent_id: str, room_id: str | None) -> dict[str, Any]:
    return _without_none({"type": "server:query_agent_info", "agentId": agent_id,
                          "roomId": room_id})  # fmt: skip


def agent_info(agent: dict[str, Any]) -> dict[str, Any]:
    """The REST agent object (or it merged with the gateway's live settings), its null members
    left out: 631a1ad's web client drops the whole frame on a null `workingDirectory`,
    `lastSeenAt` or `connectionType` (its agent schema has them optional, never nullable)."""
    return {"type": "server:agent_info", "agent": _without_none(agent)}


def agent_info_key(agent_id: str) -> str:
    """The repeat key of an agent's `server:agent_info` (protocol.events.Event.repeat_key)."""
    return f"agent_info:{agent_id}"


def request_workspace(
    *, agent_id: str, room_id: str, request_id: str, request: dict[str, Any]
) -> dict[str, Any]:
    return {"type": "server:request_workspace", "agentId": agent_id, "roomId": room_id,
            "requestId": request_id, "request": request}  # fmt: skip


def workspace_response(
    *, agent_id: str, request_id: str, response: dict[str, Any]
) -> dict[str, Any]:
    return {"type": "server:workspace_response", "agentId": agent_id, "requestId": request_id,
            "response": response}  # fmt: skip


def spawn_agent(
    *, request_id: str, agent_type: str, name: str, working_directory: str | None,
    credential_id: str | None,
) -> dict[str, Any]:  # fmt: skip
    return _without_none({"type": "server:spawn_agent", "requestId": request_id,
                          "agentType": agent_type, "name": name,
                          "workingDirectory": working_directory,
                          "credentialId": credential_id})  # fmt: skip


def spawn_result(gateway_id: str, result: GatewaySpawnResult) -> dict[str, Any]:
    return _without_none({"type": "server:spawn_result", "requestId": result.request_id,
                          "gatewayId": gateway_id, "success": result.success,
                          "agentId": result.agent_id, "error": result.error,
                          "credentials": result.credentials})  # fmt: skip


def list_credentials(request_id: str, message: ClientListGatewayCredentials) -> dict[str, Any]:
    return {"type": "server:list_credentials", "requestId": request_id,
            "agentType": message.agent_type}  # fmt: skip


def add_credential(request_id: str, message: ClientAddGatewayCredential) -> dict[str, Any]:
    return _without_none({"type": "server:add_credential", "requestId": request_id,
                          "agentType": message.agent_type, "name": message.name,
                          "mode": message.mode, "apiKey": message.api_key,
                          "baseUrl": message.base_url, "model": message.model})  # fmt: skip


def manage_credential(request_id: str, message: ClientManageGatewayCredential) -> dict[str, Any]:
    return _without_none({"type": "server:manage_credential", "requestId": request_id,
                          "agentType": message.agent_type,
                          "credentialId": message.credential_id, "action": message.action,
                          "name": message.name})  # fmt: skip


def start_oauth(request_id: str, message: ClientStartGatewayOAuth) -> dict[str, Any]:
    return {"type": "server:start_oauth", "requestId": request_id,
            "agentType": message.agent_type,
            "credentialName": message.credential_name}  # fmt: skip


def complete_oauth(message: ClientCompleteGatewayOAuth) -> dict[str, Any]:
    return {"type": "server:complete_oauth", "requestId": message.request_id,
            "callbackUrl": message.callback_url}  # fmt: skip


def gateway_credential_list(gateway_id: str, answer: GatewayCredentialList) -> dict[str, Any]:
    return {"type": "server:gateway_credential_list", "gatewayId": gateway_id,
            "agentType": answer.agent_type, "credentials": answer.credentials}  # fmt: skip


def gateway_credential_result(answer: GatewayCredentialResult) -> dict[str, Any]:
    return _without_none({"type": "server:gateway_credential_result",
                          "requestId": answer.request_id, "success": answer.success,
                          "error": answer.error, "credential": answer.credential})  # fmt: skip


def gateway_oauth_url(gateway_id: str, answer: GatewayOAuthUrl) -> dict[str, Any]:
    return _without_none({"type": "server:gateway_oauth_url", "gatewayId": gateway_id,
                          "requestId": answer.request_id, "authUrl": answer.auth_url,
                          "autoCallback": answer.auto_callback})  # fmt: skip


def gateway_oauth_result(
    gateway_id: str, *, request_id: str, success: bool, error: str | None,
    credential: dict[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    return _without_none({"type": "server:gateway_oauth_result", "gatewayId": gateway_id,
                          "requestId": request_id, "success": success, "error": error,
                          "credential": credential})  # fmt: skip


def rewind_agent(*, agent_id: str, room_id: str, message_id: str) -> dict[str, Any]:
    return {"type": "server:rewind_agent", "agentId": agent_id, "roomId": room_id,
            "messageId": message_id}  # fmt: skip


def room_rewound(
    *, room_id: str, message_id: str, removed_ids: list[str], content: str
) -> dict[str, Any]:
    return {"type": "server:room_rewound", "roomId": room_id, "messageId": message_id,
            "removedMessageIds": removed_ids, "messageContent": content}  # fmt: skip
