"""TokenService (api.md §4.1, DIFFERENCES D7): HS256 only, iss/aud/exp, key rotation."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from agentim.auth.tokens import Principal, TokenInvalid, TokenService, is_revoked

SECRET = "current-secret-with-at-least-32-characters"
PREVIOUS = "previous-secret-with-at-least-32-characters"


def _service(previous: str | None = None) -> TokenService:
    return TokenService(SECRET, previous, access_ttl_s=900, refresh_ttl_s=7 * 86400)


def _decode(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def test_access_token_claims_and_header() -> None:
    now_ms = 1_700_000_000_123
    token = _service().issue("u1", "ada", "access", now_ms=now_ms)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert _decode(token) == {
        "sub": "u1",
        "username": "ada",
        "type": "access",
        "iss": "agentim",
        "aud": "agentim",
        "iat": 1_700_000_000,
        "iatMs": now_ms,
        "exp": 1_700_000_000 + 900,
    }


def test_refresh_tokens_are_unique_and_long_lived() -> None:
    service = _service()
    first = service.issue("u1", "ada", "refresh", now_ms=1_000)
    second = service.issue("u1", "ada", "refresh", now_ms=1_000)
    assert first != second  # a jti makes every refresh token distinct, even within one ms
    assert _decode(first)["exp"] - _decode(first)["iat"] == 7 * 86400


def test_verify_round_trip() -> None:
    service = _service()
    token = service.issue("u1", "ada", "access")
    principal = service.verify(token)
    assert (principal.user_id, principal.username, principal.token_type) == ("u1", "ada", "access")
    assert principal.issued_ms is not None and abs(principal.issued_ms - time.time() * 1000) < 5000


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "u1",
        "username": "ada",
        "type": "access",
        "iss": "agentim",
        "aud": "agentim",
        "iat": now,
        "exp": now + 60,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b.c",
        jwt.encode(_claims(), None, algorithm="none"),
        jwt.encode(_claims(), SECRET + SECRET, algorithm="HS512"),
        jwt.encode(_claims(), "some-other-secret-with-32-characters-or-more"),
        jwt.encode(_claims(exp=int(time.time()) - 1), SECRET),
        jwt.encode(_claims(exp=None), SECRET),
        jwt.encode(_claims(iss="someone"), SECRET),
        jwt.encode(_claims(aud="someone"), SECRET),
        jwt.encode(_claims(sub=42), SECRET),
        jwt.encode(_claims(type="admin"), SECRET),
    ],
    ids=[
        "empty",
        "garbage",
        "alg-none",
        "hs512",
        "foreign-key",
        "expired",
        "no-exp",
        "iss",
        "aud",
        "sub-not-string",
        "bad-type",
    ],
)
def test_verify_rejects(token: str) -> None:
    with pytest.raises(TokenInvalid):
        _service().verify(token)


def test_alg_none_header_with_a_valid_signature_part_is_rejected() -> None:
    """Swapping the header to `none` on a real token must not skip the signature check."""
    real = _service().issue("u1", "ada", "access")
    _, payload, signature = real.split(".")
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    with pytest.raises(TokenInvalid):
        _service().verify(f"{header}.{payload}.{signature}")
    with pytest.raises(TokenInvalid):
        _service().verify(f"{header}.{payload}.")


def test_previous_secret_verifies_during_rotation() -> None:
    old_token = TokenService(PREVIOUS, None, 900, 900).issue("u1", "ada", "access")
    assert _service(previous=PREVIOUS).verify(old_token).user_id == "u1"
    with pytest.raises(TokenInvalid):
        _service().verify(old_token)  # without JWT_SECRET_PREVIOUS it is gone


def test_reference_token_without_iat_ms_uses_whole_seconds() -> None:
    token = jwt.encode(_claims(iat=1_700_000_000), SECRET)
    assert _service().verify(token).issued_ms == 1_700_000_000_000


def test_is_revoked_cuts_at_the_millisecond() -> None:
    principal = Principal("u1", "ada", "access", 1_000)
    assert not is_revoked(principal, None)
    assert is_revoked(principal, 1_000)
    assert not is_revoked(principal, 999)
    assert not is_revoked(Principal("u1", "ada", "access", None), 5_000)
