"""Sign-in, refresh-token rotation and sign-out (api.md §4, DIFFERENCES D7-D9, D23).

Unknown user, wrong password and locked account answer the same 401 after the same bcrypt work.
Refresh tokens are stored as SHA-256 digests in session families; all token writes of one user
run under that user's advisory lock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Final, NoReturn

import attrs
import trio

from agentim.actions.audit import audit
from agentim.auth import revocation
from agentim.auth.tokens import Principal, TokenInvalid, digest
from agentim.errors import AgentImError, unauthorized
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now, to_iso
from agentim.services import Services
from agentim.store import refresh_tokens, users
from agentim.store.db import Conn, Row
from agentim.store.kv import KvUnavailable

log = logging.getLogger("Auth")

LOCKOUT_THRESHOLD: Final = 5  # consecutive wrong passwords (D9)
LOCKOUT_DURATION: Final = timedelta(minutes=15)
MAX_SESSIONS_PER_USER: Final = 10  # live refresh tokens kept at login (api.md §4.2)
INVALID_CREDENTIALS: Final = "Invalid credentials"
REFRESH_REVOKED: Final = "Refresh token revoked or invalid"
REFRESH_INVALID: Final = "Invalid or expired refresh token"
FAST_PATH_RETRY_S: Final = (
    1.0  # a revocation Redis missed is copied there this often until it answers
)


@attrs.frozen
class TokenPair:
    access_token: str
    refresh_token: str


@attrs.frozen
class SignedIn:
    user: Row
    tokens: TokenPair


class RefreshRejected(AgentImError):
    """A refresh failure after which the client's refresh cookie is cleared (api.md §4.3)."""

    def __init__(self, message: str) -> None:
        super().__init__(401, message)


token_digest = digest  # refresh tokens are stored as this digest


def _later(delta: timedelta) -> str:
    return to_iso(datetime.now(UTC) + delta)


def _login_failed(username: str, ip: str, reason: str) -> None:
    log.warning(
        "Login failed",
        extra={"action": "login_failed", "username": username, "ip": ip, "reason": reason},
    )


@attrs.frozen
class TotpRequired:
    """Right password, 2FA on: login step two (actions/totp.py) takes this challenge token."""

    totp_token: str


async def login(
    services: Services, username: str, password: str, *, ip: str
) -> SignedIn | TotpRequired:
    """Check the credentials (with lockout) and start a new session family, or, when the user
    has 2FA on, answer a challenge for the second step.

    Raises:
        AgentImError: 401 `Invalid credentials` for an unknown user, a locked account or a
            wrong password, indistinguishably.
    """
    user = await users.get_user_by_username(services.db, username)
    if user is None:
        await services.passwords.verify_dummy(password)
        await audit(
            services.db, "login_failed", user_id=None, ip=ip, metadata={"username": username}
        )
        _login_failed(username, ip, "unknown_user")
        raise unauthorized(INVALID_CREDENTIALS)
    if user["locked_until"] is not None and user["locked_until"] > iso_now():
        await services.passwords.verify_dummy(password)
        await audit(
            services.db, "login_failed", user_id=user["id"], ip=ip, metadata={"locked": True}
        )
        _login_failed(username, ip, "locked")
        raise unauthorized(INVALID_CREDENTIALS)
    if user["password_hash"] is None:  # an OAuth-only user (actions/oauth.py): same answer
        await _no_password(services, user, password, ip)
    if not await services.passwords.verify(password, user["password_hash"]):
        await _wrong_password(services, user, ip)
    if services.passwords.needs_rehash(user["password_hash"]):  # imported from AgentIM
        new_hash = await services.passwords.hash(password)
        await users.upgrade_password_hash(services.db, user["id"], user["password_hash"], new_hash)
    if user["totp_enabled"]:
        # The failure count stays until the second step succeeds: wrong codes and wrong
        # passwords share one lockout, so a known password cannot reset a code-guessing run.
        challenge = services.tokens.issue(user["id"], user["username"], "totp_challenge")
        return TotpRequired(challenge)
    return await finish_login(services, user, ip=ip)


async def finish_login(services: Services, user: Row, *, ip: str) -> SignedIn:
    """Every factor checked: clear the failure count and start a new session family."""
    if user["failed_login_attempts"] or user["locked_until"] is not None:
        await users.reset_failed_logins(services.db, user["id"])
    tokens = await start_session(services, user["id"], user["username"])
    await audit(services.db, "login", user_id=user["id"], ip=ip)
    return SignedIn(user, tokens)


async def _no_password(services: Services, user: Row, password: str, ip: str) -> NoReturn:
    await services.passwords.verify_dummy(password)
    await audit(
        services.db, "login_failed", user_id=user["id"], ip=ip, metadata={"noPassword": True}
    )
    _login_failed(user["username"], ip, "no_password")
    raise unauthorized(INVALID_CREDENTIALS)


async def _wrong_password(services: Services, user: Row, ip: str) -> NoReturn:
    attempts = await users.record_failed_login(
        services.db,
        user["id"],
        now=iso_now(),
        lock_until=_later(LOCKOUT_DURATION),
        threshold=LOCKOUT_THRESHOLD,
    )
    await audit(
        services.db, "login_failed", user_id=user["id"], ip=ip, metadata={"attempts": attempts}
    )
    _login_failed(user["username"], ip, "wrong_password")
    if attempts >= LOCKOUT_THRESHOLD:
        log.warning("Account %s locked after %d failed attempts", user["username"], attempts)
    raise unauthorized(INVALID_CREDENTIALS)


async def start_session(services: Services, user_id: str, username: str) -> TokenPair:
    """Issue a token pair in a new family, dropping the oldest families beyond the cap."""
    family_id = new_id()
    tokens = _issue(services, user_id, username, family_id)
    async with services.db.transaction() as tx:
        await refresh_tokens.lock_user_tokens(tx, user_id)
        await refresh_tokens.trim_families(tx, user_id, keep=MAX_SESSIONS_PER_USER - 1)
        await _store(services, tx, user_id, tokens.refresh_token, family_id=family_id)
    return tokens


def _issue(services: Services, user_id: str, username: str, family_id: str) -> TokenPair:
    """Both tokens name their session (`sid`), so a logout can end it from either (D23).
    Lifetimes are the live JWT_*_EXPIRY (`jwt.accessExpiry`, `jwt.refreshExpiry`)."""
    live, issue = services.live.current, services.tokens.issue
    return TokenPair(
        issue(user_id, username, "access", session_id=family_id, ttl_s=live.access_ttl_s),
        issue(user_id, username, "refresh", session_id=family_id, ttl_s=live.refresh_ttl_s),
    )


async def _store(services: Services, tx: Conn, user_id: str, token: str, *, family_id: str) -> None:
    ttl = timedelta(seconds=services.live.current.refresh_store_ttl_s)
    await refresh_tokens.insert_refresh_token(
        tx,
        token_id=new_id(),
        user_id=user_id,
        token_hash=token_digest(token),
        family_id=family_id,
        expires_at=_later(ttl),
        now=iso_now(),
    )


async def refresh(services: Services, token: str) -> TokenPair:
    """Rotate one refresh token (D8): only the presented token's session is affected.

    Raises:
        RefreshRejected: 401 for an invalid, expired, unknown or replayed token.
        AgentImError: 401 `Invalid token type` / `User not found`.
    """
    try:
        principal = services.tokens.verify(token)
    except TokenInvalid:
        raise RefreshRejected(REFRESH_INVALID) from None
    if principal.token_type != "refresh":
        raise unauthorized("Invalid token type")
    user = await users.get_user(services.db, principal.user_id)
    if user is None:
        raise unauthorized("User not found")
    async with services.db.transaction() as tx:
        await refresh_tokens.lock_user_tokens(tx, principal.user_id)
        rotated = await _rotate(services, tx, user, token)
    if rotated is None:
        raise RefreshRejected(REFRESH_REVOKED)
    return rotated


async def _rotate(services: Services, tx: Conn, user: Row, token: str) -> TokenPair | None:
    """Inside the user's lock: the successor pair, or None (a replay also drops its family)."""
    now = iso_now()
    row = await refresh_tokens.get_refresh_token(tx, user["id"], token_digest(token))
    if row is None or row["expires_at"] < now:
        return None
    if row["rotated_at"] is not None:
        await refresh_tokens.delete_family(tx, row["family_id"])
        log.warning("Refresh token reuse detected for user %s; session revoked", user["id"])
        return None
    await refresh_tokens.mark_rotated(tx, row["id"], now)
    tokens = _issue(services, user["id"], user["username"], row["family_id"])
    await _store(services, tx, user["id"], tokens.refresh_token, family_id=row["family_id"])
    return tokens


async def end_sessions(services: Services, user_id: str) -> None:
    """Drop every refresh token of the user, cut off their access tokens and close their
    sockets on every hub process (log out everywhere, password change, admin reset and delete).

    The cut-off is committed to PostgreSQL with the refresh-token deletion, then raised in
    Redis; if Redis cannot take it, a retry copies it there once Redis answers (D23). The lock
    makes a refresh racing with this either finish first (its new tokens are then deleted and
    cut off) or find its token gone.
    """
    ttl_s = services.live.current.revocation_ttl_s
    cutoff_ms = revocation.now_ms()
    async with services.db.transaction() as tx:
        await refresh_tokens.lock_user_tokens(tx, user_id)
        await refresh_tokens.delete_user_tokens(tx, user_id)
        await revocation.record_revocation(tx, user_id, cutoff_ms, ttl_s=ttl_s)
    written = await revocation.announce_revocation(
        services.kv, services.events, user_id, cutoff_ms, ttl_s=ttl_s
    )
    if not written:
        deadline = trio.current_time() + ttl_s  # after that every token it covers has expired
        copy = partial(revocation.refresh_fast_path, services.kv, services.db, user_id)
        _CopyLater(("revocation", user_id), user_id, deadline, copy).schedule(services)


@attrs.frozen
class _CopyLater:
    """Copy a revocation that Redis missed into Redis once it answers (D23)."""

    key: tuple[str, str]
    user_id: str  # for the log line
    deadline: float  # trio time after which every token it covers has expired
    copy: Callable[[], Awaitable[None]]  # raises KvUnavailable while Redis is away

    def schedule(self, services: Services) -> None:
        if trio.current_time() < self.deadline:
            services.hub.start_timer(self.key, FAST_PATH_RETRY_S, self._attempt, services)

    async def _attempt(self, services: Services) -> None:
        try:
            await self.copy()
        except KvUnavailable:
            self.schedule(services)
            return
        log.info("Token revocation for user %s copied to Redis after an outage", self.user_id)


async def logout(
    services: Services, principal: Principal, access_token: str, refresh_token: str | None,
    *, ip: str,
) -> None:  # fmt: skip
    """End exactly the presenting session (D23): its refresh-token family (named by the access
    token's `sid`, and by the refresh token presented, if any) and exactly this access token,
    whose sockets are closed. Other sessions, devices and gateways of the user stay.
    """
    user_id, token_hash = principal.user_id, digest(access_token)
    expires_ms = (principal.expires_s or 0) * 1000 or (
        revocation.now_ms() + services.live.current.revocation_ttl_s * 1000
    )
    async with services.db.transaction() as tx:
        await refresh_tokens.lock_user_tokens(tx, user_id)
        for family_id in await _presented_families(tx, principal, refresh_token):
            await refresh_tokens.delete_family(tx, family_id)
        await revocation.record_token_revocation(tx, user_id, token_hash, expires_ms)
    ttl_s = max(1, -(-(expires_ms - revocation.now_ms()) // 1000))  # whole seconds, rounded up
    written = await revocation.announce_token_revocation(
        services.kv, services.events, user_id, token_hash, ttl_s=ttl_s
    )
    if not written:
        deadline = trio.current_time() + ttl_s
        copy = partial(_copy_token_revocation, services, token_hash, deadline)
        _CopyLater(("token-revocation", token_hash), user_id, deadline, copy).schedule(services)
    await audit(services.db, "logout", user_id=user_id, ip=ip)


async def _copy_token_revocation(services: Services, token_hash: str, deadline: float) -> None:
    """Into Redis for what is left of the token's life (`deadline`, trio time)."""
    left_s = int(deadline - trio.current_time()) + 1
    await revocation.copy_token_revocation(services.kv, token_hash, left_s)


async def _presented_families(
    tx: Conn, principal: Principal, refresh_token: str | None
) -> set[str]:
    """The session of the access token, and that of a presented refresh token of the same user
    (an unknown or foreign refresh token is ignored, as the reference does)."""
    families = {principal.session_id} if principal.session_id else set()
    if refresh_token:
        row = await refresh_tokens.get_refresh_token(tx, principal.user_id, digest(refresh_token))
        if row is not None:
            families.add(row["family_id"])
    return families


async def logout_everywhere(services: Services, user_id: str, *, ip: str) -> None:
    """Every session and socket of the user, gateways included (D7, D23)."""
    await end_sessions(services, user_id)
    await audit(services.db, "logout", user_id=user_id, ip=ip, metadata={"everywhere": True})
