"""Web Push API (head-gap A15): the VAPID public key, subscribe and unsubscribe.

With no VAPID keys (devsecrets.ensure_vapid_keys could not keep any) the key and subscribe
routes answer 404 `Web Push is not configured`, as the reference does before an administrator
sets its keys.
"""

from __future__ import annotations

from typing import Any, Final

from quart import Blueprint, Response

from agentim.actions import push
from agentim.errors import AgentImError
from agentim.http._request import json_body, ok, principal, require_auth, services
from agentim.http.docs import documented
from agentim.routing.webpush import usable_keys

blueprint = Blueprint("push", __name__)

NOT_CONFIGURED: Final = "Web Push is not configured"
INVALID: Final = "Invalid subscription data"
MAX_ENDPOINT_CHARS: Final = 2048  # push services' URLs are a few hundred characters
MAX_KEY_CHARS: Final = 256  # p256dh is 87 base64url characters, auth 22


def _require_enabled() -> None:
    if not push.push_enabled(services()):
        raise AgentImError(404, NOT_CONFIGURED)


def _text(value: Any, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _subscription(body: Any) -> tuple[str, str, str]:
    """(endpoint, p256dh, auth) of a PushSubscription's JSON; else 400."""
    data = body if isinstance(body, dict) else {}
    keys = data.get("keys")
    keys = keys if isinstance(keys, dict) else {}
    endpoint = _text(data.get("endpoint"), MAX_ENDPOINT_CHARS)
    p256dh, auth = _text(keys.get("p256dh"), MAX_KEY_CHARS), _text(keys.get("auth"), MAX_KEY_CHARS)
    if endpoint is None or p256dh is None or auth is None:
        raise AgentImError(400, INVALID)
    if not endpoint.startswith(("https://", "http://")) or not usable_keys(p256dh, auth):
        raise AgentImError(400, INVALID)
    return endpoint, p256dh, auth


@blueprint.get("/api/push/vapid-key")
async def vapid_key() -> Response:
    """The VAPID public key a browser subscribes with (public)."""
    _require_enabled()
    return ok({"publicKey": services().settings.vapid_public_key})


@blueprint.post("/api/push/subscribe")
@require_auth
@documented(summary="Keep this browser's push subscription for the caller")
async def subscribe() -> Response:
    _require_enabled()
    endpoint, p256dh, auth = _subscription(await json_body())
    await push.subscribe(
        services(), user_id=principal().user_id, endpoint=endpoint, p256dh=p256dh, auth=auth
    )
    return ok()


@blueprint.post("/api/push/unsubscribe")
@require_auth
@documented(summary="Forget the caller's push subscription of an endpoint")
async def unsubscribe() -> Response:
    body = await json_body()
    endpoint = body.get("endpoint") if isinstance(body, dict) else None
    if not isinstance(endpoint, str) or not endpoint:
        raise AgentImError(400, "Missing endpoint")
    await push.unsubscribe(services(), user_id=principal().user_id, endpoint=endpoint)
    return ok()
