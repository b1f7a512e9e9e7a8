"""The one access-token check every edge runs: signature and expiry, token type, revocation.

HTTP (`Authorization: Bearer`), `/uploads` (header or `?token=`), `client:auth` and
`gateway:auth` all call `verify_access`; each edge maps the `AccessRefused.problem` to its own
wire text (api.md §2.6, realtime.md §1.2), so the order of the checks lives here only.
"""

from __future__ import annotations

import enum
from typing import final

from agentim.auth.revocation import principal_revoked
from agentim.auth.tokens import Principal, TokenInvalid, TokenService
from agentim.store.db import Conn
from agentim.store.kv import Kv


class AccessProblem(enum.Enum):
    INVALID = "invalid"  # signature, expiry, claims or shape
    WRONG_TYPE = "wrong_type"  # a refresh token where an access token belongs
    REVOKED = "revoked"  # behind the user's cut-off (D7) or logged out (D23)


@final
class AccessRefused(Exception):
    """The token is refused; `str(exc)` is the detail for logs, never for the wire."""

    def __init__(self, problem: AccessProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem


async def verify_access(tokens: TokenService, kv: Kv, db: Conn, token: str) -> Principal:
    """The principal of a valid, unrevoked access token.

    Raises:
        AccessRefused: the token is invalid, not an access token, or revoked.
        DbError: Redis could not answer the revocation check and neither could PostgreSQL
            (each edge decides how to fail closed).
    """
    try:
        principal = tokens.verify(token)
    except TokenInvalid as exc:
        raise AccessRefused(AccessProblem.INVALID, str(exc)) from None
    if principal.token_type != "access":
        raise AccessRefused(AccessProblem.WRONG_TYPE, f"{principal.token_type} token")
    if await principal_revoked(kv, db, principal, token):
        raise AccessRefused(AccessProblem.REVOKED, f"revoked token of user {principal.user_id}")
    return principal
