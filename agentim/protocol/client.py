"""client:* messages in (realtime.md §2.2, D17) and the server:* replies a client session sends.

`decode_client` plays the reference's zod union: unknown keys are dropped, a wrong shape or an
unknown type gives None (INVALID_MESSAGE). Lengths are JavaScript's (UTF-16 code units).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import attrs

from agentim.errors import ErrorCode
from agentim.protocol import relays
from agentim.protocol.textrules import utf16_len

MAX_TOKEN_CHARS: Final = 2000
PROTOCOL_VERSION: Final = "1"  # 631a1ad's CURRENT_PROTOCOL_VERSION (client and gateway alike)
VERSION_CLOSE: Final = (1008, "Protocol version mismatch")
MAX_MENTIONS: Final = 50
MAX_ATTACHMENTS: Final = 20
PERMISSION_DECISIONS: Final = ("allow", "allowAlways", "deny")  # 631a1ad added allowAlways
MAX_REQUEST_ID_CHARS: Final = 100
MAX_DENY_REASON_CHARS: Final = 500


@attrs.frozen
class ClientAuth:
    token: str
    protocol_version: str | None = None  # absent (older clients) or "" counts as current


@attrs.frozen
class ClientPing:
    ts: int | float


@attrs.frozen
class ClientJoinRoom:
    room_id: str


@attrs.frozen
class ClientLeaveRoom:
    room_id: str


@attrs.frozen
class ClientSendMessage:
    room_id: str
    content: str
    reply_to_id: str | None
    attachment_ids: list[str]


@attrs.frozen
class ClientTyping:
    room_id: str


@attrs.frozen
class ClientStopGeneration:
    room_id: str
    agent_id: str


@attrs.frozen
class ClientPermissionResponse:
    request_id: str
    decision: str
    deny_reason: str | None = None


ClientMessage = (
    ClientAuth | ClientPing | ClientJoinRoom | ClientLeaveRoom | ClientSendMessage | ClientTyping
    | ClientStopGeneration | ClientPermissionResponse | relays.ClientRelay
)  # fmt: skip


class _Invalid(Exception):
    """The frame does not match its type's schema."""


def _string(obj: dict[str, Any], key: str, *, min_len: int = 0, max_len: int | None = None) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _Invalid(key)
    if min_len and not value:
        raise _Invalid(key)
    if max_len is not None and len(value) > max_len // 2 and utf16_len(value) > max_len:
        raise _Invalid(key)  # len ≤ utf16_len ≤ 2·len, so short strings skip the count
    return value


def _optional_string(obj: dict[str, Any], key: str, *, max_len: int | None = None) -> str | None:
    return None if key not in obj else _string(obj, key, max_len=max_len)


def _string_list(obj: dict[str, Any], key: str, *, max_items: int) -> list[str]:
    value = obj.get(key, [])
    if not isinstance(value, list) or len(value) > max_items:
        raise _Invalid(key)
    if not all(isinstance(item, str) for item in value):
        raise _Invalid(key)
    return value


def _auth(obj: dict[str, Any], max_content: int) -> ClientAuth:
    token = _string(obj, "token", min_len=1, max_len=MAX_TOKEN_CHARS)
    return ClientAuth(token, _optional_string(obj, "protocolVersion"))


def _ping(obj: dict[str, Any], max_content: int) -> ClientPing:
    ts = obj.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise _Invalid("ts")
    return ClientPing(ts)


def _join(obj: dict[str, Any], max_content: int) -> ClientJoinRoom:
    return ClientJoinRoom(_string(obj, "roomId", min_len=1))


def _leave(obj: dict[str, Any], max_content: int) -> ClientLeaveRoom:
    return ClientLeaveRoom(_string(obj, "roomId", min_len=1))


def _send(obj: dict[str, Any], max_content: int) -> ClientSendMessage:
    room_id = _string(obj, "roomId", min_len=1)
    content = _string(obj, "content", min_len=1, max_len=max_content)
    _string_list(obj, "mentions", max_items=MAX_MENTIONS)  # validated, then ignored (§3.2)
    return ClientSendMessage(
        room_id, content, _optional_string(obj, "replyToId"),
        _string_list(obj, "attachmentIds", max_items=MAX_ATTACHMENTS),
    )  # fmt: skip


def _typing(obj: dict[str, Any], max_content: int) -> ClientTyping:
    return ClientTyping(_string(obj, "roomId", min_len=1))


def _stop(obj: dict[str, Any], max_content: int) -> ClientStopGeneration:
    return ClientStopGeneration(
        _string(obj, "roomId", min_len=1), _string(obj, "agentId", min_len=1)
    )


def _permission(obj: dict[str, Any], max_content: int) -> ClientPermissionResponse:
    decision = obj.get("decision")
    if decision not in PERMISSION_DECISIONS:
        raise _Invalid("decision")
    request_id = _string(obj, "requestId", min_len=1, max_len=MAX_REQUEST_ID_CHARS)
    reason = _optional_string(obj, "denyReason", max_len=MAX_DENY_REASON_CHARS)
    return ClientPermissionResponse(request_id, str(decision), reason or None)


_DECODERS: Final[dict[str, Callable[[dict[str, Any], int], ClientMessage]]] = {
    "client:auth": _auth,
    "client:ping": _ping,
    "client:join_room": _join,
    "client:leave_room": _leave,
    "client:send_message": _send,
    "client:typing": _typing,
    "client:stop_generation": _stop,
    "client:permission_response": _permission,
    **relays.CLIENT_DECODERS,  # the client ↔ gateway relays (protocol/relays.py)
}


def decode_client(obj: dict[str, Any], *, max_content: int) -> ClientMessage | None:
    """The typed message for a parsed frame, or None when it matches no client:* schema.

    Args:
        obj: the parsed JSON object.
        max_content: the longest `client:send_message` content (UTF-16 units, D20).
    """
    kind = obj.get("type")
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        return None
    try:
        return decoder(obj, max_content)
    except (_Invalid, relays.Invalid):
        return None


# server:* frames a client session answers with itself --------------------------------------

ERROR_TEXTS: Final = {
    ErrorCode.MESSAGE_TOO_LARGE: "Message exceeds maximum size",
    ErrorCode.INVALID_JSON: "Invalid JSON",
    ErrorCode.INVALID_MESSAGE: "Invalid message format",
    ErrorCode.NOT_AUTHENTICATED: "Please authenticate first",
    ErrorCode.RATE_LIMITED: "Too many messages, please slow down",
    ErrorCode.INTERNAL_ERROR: "An internal error occurred",
    ErrorCode.SESSION_REVOKED: "Session revoked",
    ErrorCode.SERVER_SHUTDOWN: "Server is shutting down",
}
DEPTH_TEXT: Final = "JSON nesting depth exceeded"
COLLECTION_TEXT: Final = "JSON collection size exceeded"


def server_error(code: ErrorCode, message: str | None = None) -> dict[str, Any]:
    return {"type": "server:error", "code": code.value, "message": message or ERROR_TEXTS[code]}


def version_mismatch(peer: str, version: str) -> dict[str, str]:
    """The `server:error` fields for a `protocolVersion` other than ours, sent before the close
    (`peer`: "client" or "gateway")."""
    return {"code": ErrorCode.PROTOCOL_VERSION_MISMATCH.value,
            "message": f"Protocol version mismatch: {peer}={version}, server={PROTOCOL_VERSION}. "
                       f"Please update your {peer}."}  # fmt: skip


def supported_version(version: str | None) -> bool:
    """An absent or empty `protocolVersion` is an older peer: accepted, as 631a1ad does."""
    return not version or version == PROTOCOL_VERSION


def auth_result(*, user_id: str | None = None, error: str | None = None) -> dict[str, Any]:
    if error is not None:
        return {"type": "server:auth_result", "ok": False, "error": error}
    return {"type": "server:auth_result", "ok": True, "userId": user_id}


def pong(ts: int | float) -> dict[str, Any]:
    return {"type": "server:pong", "ts": _js_number(ts)}


def _js_number(value: int | float) -> int | float:
    """JSON.stringify prints integral numbers without `.0`."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value
