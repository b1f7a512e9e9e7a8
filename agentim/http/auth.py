"""/api/auth (api.md §4.7-4.9): login, refresh (cookie or body), logout of this session, log
out everywhere, the OAuth providers list; the `agentim_rt` cookie.

Limits as the reference's (head-gap A26, E3): login spends the `auth` budget (20/min per IP),
refresh its own `auth_refresh` (60/min); logout, logout-all, oauth/providers and unknown
/api/auth/* paths spend none (only the `api` budget every /api/* request spends).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from quart import Blueprint, Response, g, request

from agentim.actions import auth
from agentim.errors import AgentImError, forbidden, unauthorized
from agentim.http._request import (
    client_ip,
    json_body,
    ok,
    principal,
    rate_limit,
    require_auth,
    services,
)
from agentim.http.not_found import add_not_found_routes
from agentim.http.users import session_user_json
from agentim.http.validate import Rule, Str, parse_dict
from agentim.protocol.textrules import utf16_len

blueprint = Blueprint("auth", __name__)

COOKIE: Final = "agentim_rt"
COOKIE_PATH: Final = "/api/auth"
CLEAR_COOKIE: Final = f"{COOKIE}=; Max-Age=0; Path={COOKIE_PATH}"
MAX_BODY_TOKEN_CHARS: Final = 2000
LOGIN_SCHEMA: Final[dict[str, Rule]] = {"username": Str(min=1), "password": Str(min=1)}


def refresh_cookie(token: str) -> str:
    settings = services().live.current
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
    if isinstance(signed, auth.TotpRequired):  # step two: /api/auth/verify-totp (http/totp.py)
        return ok({"totpRequired": True, "totpToken": signed.totp_token})
    return signed_in_response(signed)


def signed_in_response(signed: auth.SignedIn) -> Response:
    """The body and refresh cookie of a completed login (password, or password and TOTP)."""
    tokens = signed.tokens
    data = {
        "user": session_user_json(signed.user),
        "accessToken": tokens.access_token,
        "refreshToken": tokens.refresh_token,
    }
    return _tokens_response(data, tokens.refresh_token)


async def _presented_refresh_token() -> str:
    """The cookie wins and the body is then ignored; otherwise the body's `refreshToken`.
    A missing, non-JSON or unusable body is 401 `Refresh token required` (as the reference)."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        _check_origin()
        return cookie
    token = await _body_refresh_token()
    if token is None:
        raise unauthorized("Refresh token required")
    return token


async def _body_refresh_token() -> str | None:
    """`refreshToken` of a JSON body (the CLI path); None for anything else."""
    try:
        body = await json_body()
    except AgentImError:  # not JSON, or a string PostgreSQL could not store: no token
        return None
    token = body.get("refreshToken") if isinstance(body, dict) else None
    if not isinstance(token, str) or not 1 <= utf16_len(token) <= MAX_BODY_TOKEN_CHARS:
        return None
    return token


def _check_origin() -> None:
    """CSRF guard for the cookie path, in production with CORS_ORIGIN set."""
    settings = services().live.current
    origin = request.headers.get("Origin")
    enforced = settings.is_production and bool(settings.cors_origin)
    if enforced and origin is not None and origin not in settings.cors_origins:
        raise forbidden("Forbidden")


@blueprint.post("/api/auth/refresh")
@rate_limit("auth_refresh")
async def refresh() -> Response:
    token = await _presented_refresh_token()
    try:
        tokens = await auth.refresh(services(), token)
    except auth.RefreshRejected as exc:
        raise AgentImError(401, exc.message, headers={"Set-Cookie": CLEAR_COOKIE}) from None
    data = {"accessToken": tokens.access_token, "refreshToken": tokens.refresh_token}
    return _tokens_response(data, tokens.refresh_token)


@blueprint.post("/api/auth/logout")
@require_auth
async def logout() -> Response:
    """This session only (D23): the presented access token and its refresh-token family."""
    refresh_token = request.cookies.get(COOKIE) or await _body_refresh_token()
    await auth.logout(services(), principal(), g.access_token, refresh_token, ip=client_ip())
    response = ok()
    response.headers["Set-Cookie"] = CLEAR_COOKIE
    return response


@blueprint.post("/api/auth/logout-all")
@require_auth
async def logout_all() -> Response:
    """Every session, token and socket of the user, gateways included (D7, D23)."""
    await auth.logout_everywhere(services(), principal().user_id, ip=client_ip())
    response = ok()
    response.headers["Set-Cookie"] = CLEAR_COOKIE
    return response


@blueprint.get("/api/auth/oauth/providers")
async def oauth_providers() -> Response:
    """Configured OAuth providers, for the login page (head-gap A5); no limit of its own."""
    return ok(services().live.current.oauth_providers)


async def _no_guard(rest: str) -> None:
    """No such auth route: plain 404, counted by no auth budget (E3)."""
    del rest


add_not_found_routes(blueprint, "/api/auth", _no_guard)
