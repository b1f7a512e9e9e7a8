"""A browser's side of Web Push for tests: its subscription keys, and a local push endpoint
(tests/routing/fake_llm's recorder) whose requests it decrypts (RFC 8291, aes128gcm) and whose
VAPID token it verifies (RFC 8292)."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import attrs
import http_ece
import jwt
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.routing.fake_llm import FakeLlm, Recorded


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@attrs.frozen
class Browser:
    """One push subscription: the endpoint and the keys only the browser holds."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes

    @classmethod
    def new(cls, push_service: FakeLlm, path: str | None = None) -> Browser:
        path = path or f"/push/{b64url(os.urandom(9))}"
        return cls(push_service.url + path, ec.generate_private_key(ec.SECP256R1()),
                   os.urandom(16))  # fmt: skip

    @property
    def path(self) -> str:
        return "/" + self.endpoint.split("/", 3)[3]

    def subscription(self) -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives and the web client posts."""
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": self.endpoint,
                "keys": {"p256dh": b64url(public), "auth": b64url(self.auth_secret)}}  # fmt: skip

    def decrypt(self, request: Recorded) -> Any:
        """The notification's JSON, decrypted as the browser would."""
        assert request.headers["content-encoding"] == "aes128gcm"
        plain = http_ece.decrypt(
            request.body, private_key=self.private_key, auth_secret=self.auth_secret,
            version="aes128gcm",
        )  # fmt: skip
        return json.loads(plain)


def vapid_claims(request: Recorded, public_key: str) -> dict[str, Any]:
    """Verify the request's `Authorization: vapid t=…,k=…` against the hub's public key."""
    scheme, _, params = request.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == public_key
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(public_key))
    claims: dict[str, Any] = jwt.decode(
        fields["t"], key, algorithms=["ES256"], options={"verify_aud": False}
    )
    return claims


async def wait_requests(service: FakeLlm, count: int, *, path: str | None = None) -> list[Recorded]:
    """The first `count` requests (to `path`, if given) the push endpoint received."""

    def matching() -> list[Recorded]:
        return [r for r in service.requests if path is None or r.path == path]

    with trio.fail_after(10):
        while len(matching()) < count:  # noqa: ASYNC110
            await trio.sleep(0.02)  # the hub sends in the background: watching is polling
    return matching()[:count]
