"""Errors a client should see: HTTP status + envelope text, or a WebSocket error code.

Anything else raised inside a handler is a bug: a logged 500 or INTERNAL_ERROR.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """`server:error` codes (realtime.md §9.2)."""

    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    JSON_TOO_DEEP = "JSON_TOO_DEEP"
    INVALID_JSON = "INVALID_JSON"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    RATE_LIMITED = "RATE_LIMITED"
    ROOM_NOT_FOUND = "ROOM_NOT_FOUND"
    NOT_A_MEMBER = "NOT_A_MEMBER"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    SESSION_REVOKED = "SESSION_REVOKED"
    SERVER_SHUTDOWN = "SERVER_SHUTDOWN"
    CHUNK_TOO_LARGE = "CHUNK_TOO_LARGE"
    # 631a1ad's additions (head-gap B31, B32)
    STREAM_TOO_LARGE = "STREAM_TOO_LARGE"
    PROTOCOL_VERSION_MISMATCH = "PROTOCOL_VERSION_MISMATCH"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    INVALID_TOKEN = "INVALID_TOKEN"
    GATEWAY_NOT_FOUND = "GATEWAY_NOT_FOUND"
    GATEWAY_OFFLINE = "GATEWAY_OFFLINE"
    INVALID_REQUEST = "INVALID_REQUEST"


class AgentImError(Exception):
    """An error with a wire representation: HTTP `{"ok":false,"error":message}` at `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: ErrorCode | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra or {}
        self.headers = headers or {}


class ValidationFailed(AgentImError):
    """400 `Validation failed` with zod-style `fields`."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        super().__init__(400, "Validation failed", extra={"fields": fields})


def bad_request(message: str) -> AgentImError:
    return AgentImError(400, message)


def unauthorized(message: str = "Unauthorized") -> AgentImError:
    return AgentImError(401, message)


def forbidden(message: str) -> AgentImError:
    return AgentImError(403, message)


def not_found(message: str) -> AgentImError:
    return AgentImError(404, message)


def conflict(message: str) -> AgentImError:
    return AgentImError(409, message)
