"""JWT HS256 access and refresh tokens (api.md §4.1); pure given the secret and the clock.

Beyond the reference, tokens carry `iatMs` (issue time in ms) so a revocation cuts exactly
between tokens issued before and after it, even within one second (DIFFERENCES D7), and `sid`
(the refresh-token family they were issued with) so a logout can end exactly the presenting
session even when the client sends no refresh token (D23).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Final

import attrs
import jwt

from agentim.protocol.ids import new_id

ALGORITHM: Final = "HS256"
ISSUER: Final = "agentim"
AUDIENCE: Final = "agentim"
TOKEN_TYPES: Final = ("access", "refresh", "totp_challenge")
# Login step two (head-gap A4): the reference's challenge lives 5 minutes; it is good only for
# /api/auth/verify-totp (every other check asks for "access" or "refresh").
CHALLENGE_TTL_S: Final = 300


class TokenInvalid(Exception):
    """Signature, expiry, claims or shape failed."""


@attrs.frozen
class Principal:
    """Who a verified token speaks for."""

    user_id: str
    username: str
    token_type: str
    issued_ms: int | None  # None when the token has no iat
    expires_s: int | None = None  # the `exp` claim (epoch seconds)
    session_id: str | None = None  # the `sid` claim: the session (refresh family), if any


@attrs.frozen
class TokenService:
    secret: str
    previous_secret: str | None
    access_ttl_s: int
    refresh_ttl_s: int

    def issue(
        self,
        user_id: str,
        username: str,
        token_type: str,
        *,
        now_ms: int | None = None,
        session_id: str | None = None,
        ttl_s: int | None = None,
    ) -> str:
        """A signed token; `ttl_s` (the live JWT_*_EXPIRY) overrides the start-up lifetime."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if ttl_s is None:
            ttl_s = {"access": self.access_ttl_s, "totp_challenge": CHALLENGE_TTL_S}.get(
                token_type, self.refresh_ttl_s
            )
        ttl = ttl_s
        claims: dict[str, Any] = {
            "sub": user_id,
            "username": username,
            "type": token_type,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now_ms // 1000,
            "iatMs": now_ms,
            "exp": now_ms // 1000 + ttl,
        }
        if session_id is not None:
            claims["sid"] = session_id
        if token_type != "access":
            claims["jti"] = new_id()  # two refresh tokens are never byte-identical
        return jwt.encode(claims, self.secret.encode(), algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """Check signature (current or previous secret), iss, aud, exp and shape."""
        if not token:
            raise TokenInvalid("empty token")
        claims = self._decode(token)
        sub, username, kind = claims.get("sub"), claims.get("username"), claims.get("type")
        if not isinstance(sub, str) or not isinstance(username, str) or kind not in TOKEN_TYPES:
            raise TokenInvalid("payload shape")
        exp, sid = claims.get("exp"), claims.get("sid")
        return Principal(
            sub,
            username,
            kind,
            _issued_ms(claims),
            int(exp) if isinstance(exp, int | float) else None,
            sid if isinstance(sid, str) else None,
        )

    def _decode(self, token: str) -> dict[str, Any]:
        last: Exception = TokenInvalid("no secret")
        for secret in filter(None, (self.secret, self.previous_secret)):
            try:
                return jwt.decode(  # type: ignore[no-any-return]
                    token,
                    secret.encode(),
                    algorithms=[ALGORITHM],
                    issuer=ISSUER,
                    audience=AUDIENCE,
                    options={"require": ["exp"]},
                    leeway=0,
                )
            except jwt.InvalidSignatureError as exc:
                last = exc
            except jwt.PyJWTError as exc:
                raise TokenInvalid(str(exc)) from exc
        raise TokenInvalid(str(last))


def _issued_ms(claims: dict[str, Any]) -> int | None:
    exact = claims.get("iatMs")
    if isinstance(exact, int) and not isinstance(exact, bool):
        return exact
    iat = claims.get("iat")
    return int(iat * 1000) if isinstance(iat, int | float) else None


def digest(token: str) -> str:
    """SHA-256 hex of a token: how refresh tokens and revoked access tokens are stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_revoked(principal: Principal, cutoff_ms: int | None) -> bool:
    """Issued at or before the revocation cut-off (D7: exact to the millisecond)."""
    if cutoff_ms is None or principal.issued_ms is None:
        return False
    return principal.issued_ms <= cutoff_ms
