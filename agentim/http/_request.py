"""Request helpers shared by blueprints: services, JSON in and out, auth, ids, client IP."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, Final, TypeVar, cast

from quart import Response, current_app, g, request

from agentim.auth.access import AccessProblem, AccessRefused, verify_access
from agentim.auth.tokens import Principal
from agentim.errors import AgentImError, ValidationFailed, forbidden, unauthorized
from agentim.protocol.envelope import dumps
from agentim.protocol.forwarded import client_address
from agentim.protocol.ids import is_valid_path_id
from agentim.protocol.storable import UNSTORABLE_TEXT, unstorable_path
from agentim.services import Services
from agentim.store import users

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
_NO_DATA: Final = object()


def services() -> Services:
    return cast(Services, current_app.extensions["agentim"])


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    response = Response(dumps(payload), status=status, content_type="application/json")
    response.headers["Content-Type"] = "application/json"  # exactly, no charset (api.md §0.1)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def ok(data: Any = _NO_DATA, status: int = 200, **extra: Any) -> Response:
    body: dict[str, Any] = {"ok": True}
    if data is not _NO_DATA:
        body["data"] = data
    body.update(extra)
    return json_response(body, status)


async def json_body() -> Any:
    """The body parsed as JSON whatever the Content-Type; else 400 `Invalid JSON body`.

    A string PostgreSQL cannot store (NUL, an unpaired surrogate: protocol/storable) is refused
    here for every route, as 400 `Validation failed` naming the field.
    """
    raw = await request.get_data(as_text=False)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise AgentImError(400, "Invalid JSON body") from None
    refuse_unstorable(body)
    return body


def refuse_unstorable(value: Any) -> None:
    """Raise ValidationFailed naming the field if a string in `value` cannot be stored."""
    where = unstorable_path(value)
    if where is not None:
        raise ValidationFailed([{"field": where, "message": UNSTORABLE_TEXT}])


def client_ip() -> str:
    """api.md §2.11, with TRUST_PROXY_HOPS: the address `hops` entries from the right."""
    settings = services().live.current
    return client_address(
        request.headers.get("X-Forwarded-For", ""), request.headers.get("X-Real-IP", ""),
        request.remote_addr, trust_proxy=settings.trust_proxy, hops=settings.trust_proxy_hops,
    )  # fmt: skip


async def authenticate_header() -> Principal:
    """api.md §2.6: Bearer access token, not revoked (fail-open)."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise unauthorized("Unauthorized")
    token = header[len("Bearer ") :]
    principal = await authenticate_token(token)
    g.access_token = token  # a logout revokes exactly this token (D23)
    return principal


# api.md §2.6: the 401 text for each refusal, on /api and /uploads alike
UNAUTHORIZED_TEXTS: Final = {
    AccessProblem.INVALID: "Invalid or expired token",
    AccessProblem.WRONG_TYPE: "Invalid token type",
    AccessProblem.REVOKED: "Token revoked",
}


async def authenticate_token(token: str) -> Principal:
    """The principal of an access token, else 401 with the text of api.md §2.6."""
    svc = services()
    try:
        return await verify_access(svc.tokens, svc.kv, svc.db, token)
    except AccessRefused as exc:
        raise unauthorized(UNAUTHORIZED_TEXTS[exc.problem]) from None


def principal() -> Principal:
    return cast(Principal, g.principal)


def require_auth(fn: F) -> F:
    @wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.principal = await authenticate_header()
        return await fn(*args, **kwargs)

    return cast(F, wrapper)


def require_admin(fn: F) -> F:
    """api.md §2.7: the role is read from the database on every call."""

    @wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.principal = await authenticate_header()
        await ensure_admin()
        return await fn(*args, **kwargs)

    return cast(F, wrapper)


async def ensure_admin() -> None:
    """api.md §2.7: the role is read from the database on every admin call."""
    if await users.get_role(services().db, principal().user_id) != "admin":
        raise forbidden("Admin access required")


def check_ids(*names: str) -> Callable[[F], F]:
    """api.md §2.8: path ids are 1-30 characters of [A-Za-z0-9_-] (after auth)."""

    def decorate(fn: F) -> F:
        @wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            for name in names:
                if not is_valid_path_id(str(kwargs.get(name, ""))):
                    raise AgentImError(400, f"Invalid parameter: {name}")
            return await fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def rate_limit(cls: str) -> Callable[[F], F]:
    """A route-level limiter class (auth, sens, upload, router-test); off in test mode."""

    def decorate(fn: F) -> F:
        @wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            await enforce_rate_limit(cls)
            return await fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


async def enforce_rate_limit(cls: str) -> None:
    limiter = services().limiter
    if not limiter.enabled:
        return
    decision = await limiter.hit(cls, client_ip())
    g.rate_headers = {**getattr(g, "rate_headers", {}), **decision.headers()}
    if not decision.allowed:
        raise AgentImError(429, "Too many requests", headers=decision.headers())
