"""/api/auth (api.md §4.7-4.9): login, refresh (cookie or body), logout; the `agentim_rt` cookie.

Every /api/auth/* request spends the `auth` rate budget first, unknown paths included (§2.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from quart import Blueprint, Response, request

from agentim.actions import auth
from agentim.errors import AgentImError, forbidden, unauthorized
from agentim.http._request import (
    client_ip,
    enforce_rate_limit,
    json_body,
    ok,
    principal,
    rate_limit,
    require_auth,
    services,
)
from agentim.http.not_found import add_not_found_routes
from agentim.http.users import login_json
from agentim.http.validate import Rule, Str, parse_dict
from agentim.protocol.textrules import utf16_len

blueprint = Blueprint("auth", __name__)

COOKIE: Final = "agentim_rt"
COOKIE_PATH: Final = "/api/auth"
CLEAR_COOKIE: Final = f"{COOKIE}=; Max-Age=0; Path={COOKIE_PATH}"
MAX_BODY_TOKEN_CHARS: Final = 2000
LOGIN_SCHEMA: Final[dict[str, Rule]] = {"username": Str(min=1), "password": Str(min=1)}


def refresh_cookie(token: str) -> str:
    settings = services().settings
    cookie = (
        f"{COOKIE}={token}; Max-Age={settings.refresh_store_ttl_s}; Path={COOKIE_PATH}; "
        "HttpOnly; SameSite=Strict"
    )
    return cookie + "; Secure" if settings.is_production else cookie


def _tokens_response(data: Mapping[str, object], refresh_token: str) -> Response:
    response = ok(data)
    response.headers["Set-Cookie"] = refresh_cookie(refresh_token)
    return response


@blueprint.post("/api/auth/login")
@rate_limit("auth")
async def login() -> Response:
    fields = parse_dict(LOGIN_SCHEMA, await json_body())
    signed = await auth.login(services(), fields["username"], fields["password"], ip=client_ip())
    tokens = signed.tokens
    data = {
        "user": login_json(signed.user),
        "accessToken": tokens.access_token,
        "refreshToken": tokens.refresh_token,
    }
    return _tokens_response(data, tokens.refresh_token)


async def _presented_refresh_token() -> str:
    """The cookie wins and the body is then ignored; otherwise the body must be JSON (§4.8)."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        _check_origin()
        return cookie
    body = await json_body()
    token = body.get("refreshToken") if isinstance(body, dict) else None
    if not isinstance(token, str) or not 1 <= utf16_len(token) <= MAX_BODY_TOKEN_CHARS:
        raise unauthorized("Refresh token required")
    return token


def _check_origin() -> None:
    """CSRF guard for the cookie path, in production with CORS_ORIGIN set."""
    settings = services().settings
    origin = request.headers.get("Origin")
    enforced = settings.is_production and bool(settings.cors_origin)
    if enforced and origin is not None and origin != settings.cors_origin:
        raise forbidden("Forbidden")


@blueprint.post("/api/auth/refresh")
@rate_limit("auth")
async def refresh() -> Response:
    token = await _presented_refresh_token()
    try:
        tokens = await auth.refresh(services(), token)
    except auth.RefreshRejected as exc:
        raise AgentImError(401, exc.message, headers={"Set-Cookie": CLEAR_COOKIE}) from None
    data = {"accessToken": tokens.access_token, "refreshToken": tokens.refresh_token}
    return _tokens_response(data, tokens.refresh_token)


@blueprint.post("/api/auth/logout")
@rate_limit("auth")
@require_auth
async def logout() -> Response:
    await auth.logout(services(), principal().user_id, ip=client_ip())
    response = ok()
    response.headers["Set-Cookie"] = CLEAR_COOKIE
    return response


async def _auth_path_guard(rest: str) -> None:
    """No such auth route: the auth limiter still counts it."""
    del rest
    await enforce_rate_limit("auth")


add_not_found_routes(blueprint, "/api/auth", _auth_path_guard)
