"""Web Push delivery (RFC 8030/8291/8292): encrypt with pywebpush, sign with py_vapid, send with
httpx. Only `PushQueue` takes work from the message path, and it never waits.

pywebpush's own senders use `requests` (blocking) or aiohttp (asyncio); we use its encoder
only and send on the hub's trio-native httpx client, so a slow push service is cancelled by a
trio scope and the endpoint passes the same SSRF check as the AI router's LLM calls.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from typing import Any, Final, final

import attrs
import httpx
import trio
from cryptography.hazmat.primitives.asymmetric import ec

from agentim.routing.ssrf import PrivateNetworkRefused, check_resolved_address

log = logging.getLogger("WebPush")

BODY_PREVIEW_CHARS: Final = 200  # the reference's notification text: 200 characters, then "..."
PUSH_TTL_S: Final = 86400  # a push service keeps an undelivered notification for a day
VAPID_TOKEN_S: Final = 12 * 3600  # RFC 8292 allows at most 24 h
VAPID_REUSE_S: Final = 3600  # a signed token is reused this long (it stays valid 11 h more)
MAX_AUDIENCES: Final = 256  # push-service origins with a cached token (browsers use a handful)
EXPIRED_STATUSES: Final = frozenset({404, 410})  # the subscription is gone: remove it


@attrs.frozen
class PushJob:
    """One stored message whose room members without an open socket get a notification."""

    room_id: str
    sender_id: str | None  # a user sender is not notified of their own message
    payload: dict[str, Any]


@attrs.frozen
class Subscription:
    sub_id: str
    user_id: str
    endpoint: str
    p256dh: str
    auth: str


def notification(title: str, content: str, room_id: str, message_id: str) -> dict[str, Any]:
    """The payload the reference sends: `{title, body, data: {roomId, messageId}}`."""
    body = content
    if len(content) > BODY_PREVIEW_CHARS:
        body = content[:BODY_PREVIEW_CHARS] + "..."
    return {"title": title, "body": body, "data": {"roomId": room_id, "messageId": message_id}}


@final
class PushQueue:
    """The bounded hand-off between the message path and this process's push sender.

    `offer` never blocks: when the sender is behind by `size` messages, later ones get no push
    (logged, at most once a minute). Nothing is queued until the sender has started.
    """

    def __init__(self) -> None:
        self._send: trio.MemorySendChannel[PushJob] | None = None
        self._last_drop_log = -1e9

    def open(self, size: int) -> trio.MemoryReceiveChannel[PushJob]:
        self._send, receive = trio.open_memory_channel[PushJob](size)
        return receive

    def close(self) -> None:
        self._send = None

    def offer(self, job: PushJob) -> bool:
        if self._send is None:
            return False
        try:
            self._send.send_nowait(job)
        except trio.WouldBlock:
            now = time.monotonic()
            if now - self._last_drop_log >= 60:
                self._last_drop_log = now
                log.warning("Push queue full, notifications for room %s dropped", job.room_id)
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True


def _audience(endpoint: str) -> str:
    parts = httpx.URL(endpoint)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    port = "" if parts.port in (None, default) else f":{parts.port}"
    return f"{parts.scheme}://{parts.host}{port}"


def encrypt_payload(sub: Subscription, payload: dict[str, Any]) -> bytes:
    """The notification encrypted for the subscription (aes128gcm): CPU work of a few ms (an
    ephemeral ECDH key each time), so callers run it in a worker thread.

    Raises:
        ValueError: the subscription's keys are unusable.
    """
    from pywebpush import WebPusher, WebPushException  # aiohttp et al.: imported on first use

    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    info = {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
    try:
        body: bytes = WebPusher(info).encode(data, content_encoding="aes128gcm")["body"]
    except WebPushException as exc:  # one error type for the caller: the keys are unusable
        raise ValueError(str(exc)) from None
    return body


@final
class VapidSigner:
    """The `Authorization: vapid t=…,k=…` header per push-service origin: a token valid for
    VAPID_TOKEN_S is signed once and reused for VAPID_REUSE_S (ES256 costs about 0.5 ms)."""

    def __init__(self, private_key: str, subject: str) -> None:
        from py_vapid import Vapid  # imported with the first push sender

        self._vapid = Vapid.from_raw(private_key.encode())
        self._subject = subject
        self._tokens: dict[str, tuple[float, dict[str, str]]] = {}

    def headers(self, endpoint: str) -> dict[str, str]:
        """Every header of a push request to `endpoint` but the body's length."""
        audience, now = _audience(endpoint), time.monotonic()
        cached = self._tokens.get(audience)
        if cached is None or now - cached[0] > VAPID_REUSE_S:
            if len(self._tokens) >= MAX_AUDIENCES:  # a bound: forget all, sign again
                self._tokens.clear()
            claims = {"sub": self._subject, "aud": audience,
                      "exp": int(time.time()) + VAPID_TOKEN_S}  # fmt: skip
            cached = self._tokens[audience] = (now, dict(self._vapid.sign(claims)))
        return {**cached[1], "Content-Encoding": "aes128gcm", "TTL": str(PUSH_TTL_S),
                "Content-Type": "application/octet-stream", "Urgency": "normal"}  # fmt: skip


def usable_keys(p256dh: str, auth: str) -> bool:
    """A browser's keys: a P-256 point (65 bytes uncompressed) and a 16-byte auth secret,
    base64url (padded or not)."""
    try:
        point = base64.urlsafe_b64decode(p256dh + "=" * (-len(p256dh) % 4))
        secret = base64.urlsafe_b64decode(auth + "=" * (-len(auth) % 4))
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, binascii.Error):
        return False
    return len(point) == 65 and len(secret) == 16


class PushFailed(Exception):
    """A push request that did not reach a 2xx answer; `status` is None without an answer."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


async def post_push(
    http: httpx.AsyncClient, sub: Subscription, body: bytes, headers: dict[str, str], *,
    timeout_s: float, allow_private: bool,
) -> int:  # fmt: skip
    """POST one encrypted notification; the 2xx status.

    Raises:
        PushFailed: refused endpoint, network error, timeout, or a non-2xx answer.
    """
    try:
        target = httpx.URL(sub.endpoint)  # the host httpx will connect to is the one checked
    except httpx.InvalidURL:
        raise PushFailed("endpoint is not a URL") from None
    if target.scheme not in ("http", "https") or not target.host:
        raise PushFailed("endpoint is not an http(s) URL")
    with trio.move_on_after(timeout_s):
        try:
            await check_resolved_address(target.host, allow_private=allow_private)
            response = await http.post(sub.endpoint, content=body, headers=headers)
        except PrivateNetworkRefused:
            raise PushFailed("endpoint points to internal or private networks") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise PushFailed(f"network error: {exc or type(exc).__name__}") from None
        if 200 <= response.status_code < 300:
            return response.status_code
        raise PushFailed(f"push service answered {response.status_code}", response.status_code)
    raise PushFailed(f"no answer within {int(timeout_s * 1000)} ms")


def new_push_client() -> httpx.AsyncClient:
    """Redirects are not followed (a push service does not redirect; SSRF); no proxy env."""
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=None)
