"""OAuth routes (head-gap A5, A6): sign in with GitHub or Google, link and unlink a provider,
list the caller's linked accounts. Paths, redirects, cookies and texts as AgentIM 631a1ad.

GET /api/auth/oauth/<provider> sends the browser to the provider with a fresh state (Redis and
the `agentim_oauth_state` cookie). The callback redirects the browser to `/auth/callback?provider=`
with the `agentim_rt` cookie set (the web client then refreshes), or to `/login?error=<code>`.

Linking: POST …/link (Bearer) answers the provider URL, as the reference, and also sets the state
cookie so the callback can check it. The web client's Settings page instead navigates to
GET /api/auth/oauth/<provider>; when that request carries a live `agentim_rt` session cookie the
flow links the provider to that user (the reference's stated intent; its callback signs in a new
user instead). A finished link lands on `/settings?linked=<provider>`, a failed one on
`/settings?error=<code>`.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from quart import Blueprint, Response, request

from agentim.actions import oauth
from agentim.actions.auth import token_digest
from agentim.auth.tokens import TokenInvalid
from agentim.errors import AgentImError
from agentim.http._request import client_ip, ok, principal, require_auth, services
from agentim.http.auth import COOKIE, COOKIE_PATH
from agentim.protocol.timefmt import iso_now
from agentim.store import refresh_tokens

blueprint = Blueprint("oauth", __name__)

STATE_COOKIE: Final = "agentim_oauth_state"


def _cookie(name: str, value: str, max_age: int) -> str:
    cookie = f"{name}={value}; Max-Age={max_age}; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax"
    return cookie + "; Secure" if services().settings.is_production else cookie


def _redirect(location: str, *cookies: str) -> Response:
    response = Response("", status=302)
    response.headers["Location"] = location
    for cookie in cookies:
        response.headers.add("Set-Cookie", cookie)
    return response


def _callback_uri(provider: str) -> str:
    """This hub's callback URL as the browser reaches it (X-Forwarded-Proto with TRUST_PROXY)."""
    trusted = services().live.current.trust_proxy
    scheme = (request.headers.get("X-Forwarded-Proto") if trusted else None) or request.scheme
    return f"{scheme}://{request.host}/api/auth/oauth/{provider}/callback"


async def _session_user() -> str | None:
    """The user of a live `agentim_rt` session cookie, if the request carries one."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    svc = services()
    try:
        claims = svc.tokens.verify(token)
    except TokenInvalid:
        return None
    if claims.token_type != "refresh":
        return None
    row = await refresh_tokens.get_refresh_token(svc.db, claims.user_id, token_digest(token))
    if row is None or row["rotated_at"] is not None or row["expires_at"] < iso_now():
        return None
    return claims.user_id


@blueprint.get("/api/auth/oauth/<name>")
async def authorize(name: str) -> Response:
    provider = oauth.parse_provider(name)
    oauth.configured(services(), provider)
    link_user_id = await _session_user()
    state, url = await oauth.begin(
        services(), provider, redirect_uri=_callback_uri(provider), link_user_id=link_user_id
    )
    return _redirect(url, _cookie(STATE_COOKIE, state, oauth.STATE_TTL_S))


@blueprint.get("/api/auth/oauth/<name>/callback")
async def callback(name: str) -> Response:
    try:
        provider = oauth.parse_provider(name)
    except AgentImError:
        return _redirect("/login?error=invalid_provider")
    args = request.args
    if args.get("error"):
        return _redirect(f"/login?error={quote(args['error'], safe='')}")
    code, state = args.get("code"), args.get("state")
    if not code or not state:
        return _redirect("/login?error=missing_params")
    outcome = await oauth.finish(
        services(), provider, code=code, state=state,
        cookie_state=request.cookies.get(STATE_COOKIE),
        redirect_uri=_callback_uri(provider), ip=client_ip(),
    )  # fmt: skip
    clear_state = _cookie(STATE_COOKIE, "", 0)
    if outcome.kind == "login" and outcome.tokens is not None:
        ttl_s = services().live.current.refresh_store_ttl_s
        session = _cookie(COOKIE, outcome.tokens.refresh_token, ttl_s)
        return _redirect(f"/auth/callback?provider={provider}", clear_state, session)
    if outcome.kind == "linked":
        return _redirect(f"/settings?linked={provider}", clear_state)
    page = "/settings" if outcome.linking else "/login"
    if outcome.error == "state_mismatch":  # the cookie is another flow's: leave it alone
        return _redirect(f"{page}?error={outcome.error}")
    return _redirect(f"{page}?error={outcome.error}", clear_state)


@blueprint.post("/api/auth/oauth/<name>/link")
@require_auth
async def link(name: str) -> Response:
    provider = oauth.parse_provider(name)
    state, url = await oauth.begin_link(
        services(), provider, principal().user_id, redirect_uri=_callback_uri(provider)
    )
    response = ok({"url": url})
    response.headers["Set-Cookie"] = _cookie(STATE_COOKIE, state, oauth.STATE_TTL_S)
    return response


@blueprint.delete("/api/auth/oauth/<name>/unlink")
@require_auth
async def unlink(name: str) -> Response:
    provider = oauth.parse_provider(name)
    await oauth.unlink(services(), principal().user_id, provider, ip=client_ip())
    return ok()


@blueprint.get("/api/users/me/oauth-accounts")
@require_auth
async def oauth_accounts() -> Response:
    return ok(await oauth.linked_accounts(services(), principal().user_id))
