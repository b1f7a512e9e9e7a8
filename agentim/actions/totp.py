"""TOTP two-factor login (head-gap A4, A25): setup, confirmation, disabling, login step two.

The secret is sealed with ENCRYPTION_KEY (auth/crypto.py); backup codes are stored as digests
keyed with that secret (auth/totp.py says why), and each works once. Login step two shares the
password lockout (D9): a wrong code counts as a failed login, and a locked account's correct
code is refused with the same 401 after the same work. Beyond the reference, a code is
accepted once: its time step is recorded (the setup code's too), so a replay within the drift
window is refused.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Final, NoReturn

from agentim.actions.audit import audit
from agentim.actions.auth import LOCKOUT_DURATION, LOCKOUT_THRESHOLD, SignedIn, finish_login
from agentim.auth import revocation, totp
from agentim.auth.crypto import open_secret, seal
from agentim.auth.tokens import TokenInvalid, is_revoked
from agentim.errors import AgentImError, bad_request, not_found, unauthorized
from agentim.protocol.timefmt import iso_now, to_iso
from agentim.services import Services
from agentim.store import totp as totp_store, users
from agentim.store.db import Row

log = logging.getLogger("Auth")

ALREADY_ENABLED: Final = "2FA is already enabled"
NOT_ENABLED: Final = "2FA is not enabled"
INVALID_CODE: Final = "Invalid TOTP code"
INVALID_STATE: Final = "Invalid TOTP state"
INVALID_CHALLENGE: Final = "Invalid or expired TOTP token"


async def _user(services: Services, user_id: str) -> Row:
    row = await users.get_user(services.db, user_id)
    if row is None:
        raise not_found("User not found")
    return row


def _open(services: Services, user: Row) -> str | None:
    """The user's secret in clear; None if there is none or it does not open with this key."""
    sealed = user["totp_secret"]
    if sealed is None:
        return None
    secret = open_secret(sealed, services.settings.encryption_key)
    if secret is None:
        log.error("TOTP secret of user %s does not decrypt (ENCRYPTION_KEY changed?)", user["id"])
    return secret


async def begin_setup(services: Services, user_id: str, *, ip: str) -> dict[str, str]:
    """Draw a new secret (replacing one not yet confirmed). Returns `secret` and `uri`.

    Raises:
        AgentImError: 404 `User not found`; 400 `2FA is already enabled`.
    """
    user = await _user(services, user_id)
    if user["totp_enabled"]:
        raise bad_request(ALREADY_ENABLED)
    secret = totp.new_secret()
    key = services.settings.encryption_key
    if key is None:
        log.warning("ENCRYPTION_KEY is not set: TOTP secrets are stored unencrypted")
    if not await totp_store.set_pending_secret(services.db, user_id, seal(secret, key), iso_now()):
        raise bad_request(ALREADY_ENABLED)
    await audit(services.db, "totp_setup", user_id=user_id, ip=ip)
    uri = totp.provisioning_uri(secret, user["username"], services.live.current.totp_issuer)
    return {"secret": secret, "uri": uri}


async def confirm_setup(services: Services, user_id: str, code: str, *, ip: str) -> list[str]:
    """Check a code against the pending secret, turn 2FA on, and return the ten backup codes
    (shown once; only their hashes are kept).

    Raises:
        AgentImError: 404 `User not found`; 400 `2FA is already enabled`,
            `No TOTP setup in progress` or `Invalid TOTP code`.
    """
    user = await _user(services, user_id)
    if user["totp_enabled"]:
        raise bad_request(ALREADY_ENABLED)
    secret = _open(services, user)
    if secret is None:
        raise bad_request("No TOTP setup in progress")
    step = totp.matching_step(secret, code)
    if step is None:
        raise bad_request(INVALID_CODE)
    codes = totp.new_backup_codes()
    hashes = [totp.backup_code_digest(secret, plain) for plain in codes]
    enabled = await totp_store.enable(
        services.db,
        user_id,
        sealed_secret=user["totp_secret"],
        backup_hashes=json.dumps(hashes),
        step=step,
        now=iso_now(),
    )
    if not enabled:  # a concurrent confirmation won, or a new setup replaced the secret
        raise bad_request(ALREADY_ENABLED)
    await audit(services.db, "totp_enabled", user_id=user_id, ip=ip)
    return codes


async def disable(services: Services, user_id: str, password: str, *, ip: str) -> None:
    """Turn 2FA off after checking the account password.

    Raises:
        AgentImError: 404 `User not found`; 400 `2FA is not enabled` / `Password not set`;
            401 `Invalid password`.
    """
    user = await _user(services, user_id)
    if not user["totp_enabled"]:
        raise bad_request(NOT_ENABLED)
    if not user["password_hash"]:  # an account that only signs in through OAuth
        raise bad_request("Password not set")
    if not await services.passwords.verify(password, user["password_hash"]):
        raise unauthorized("Invalid password")
    if not await totp_store.disable(services.db, user_id, iso_now()):
        raise bad_request(NOT_ENABLED)
    await audit(services.db, "totp_disabled", user_id=user_id, ip=ip)


async def verify_login(services: Services, challenge: str, code: str, *, ip: str) -> SignedIn:
    """Login step two: the challenge from /api/auth/login plus a TOTP or backup code.

    Raises:
        AgentImError: 401 `Invalid or expired TOTP token` (also once the user's sessions were
            revoked after it was issued), `Invalid token type`, `Invalid TOTP state` or
            `Invalid TOTP code` (also for a locked account).
    """
    try:
        principal = services.tokens.verify(challenge)
    except TokenInvalid:
        raise unauthorized(INVALID_CHALLENGE) from None
    if principal.token_type != "totp_challenge":
        raise unauthorized("Invalid token type")
    cutoff = await revocation.revoked_cutoff(services.kv, services.db, principal.user_id)
    if is_revoked(principal, cutoff):  # a password change or "log out everywhere" since step one
        raise unauthorized(INVALID_CHALLENGE)
    user = await users.get_user(services.db, principal.user_id)
    secret = _open(services, user) if user is not None and user["totp_enabled"] else None
    if user is None or secret is None:
        raise unauthorized(INVALID_STATE)
    step = totp.matching_step(secret, code)
    backup_hash = _matching_backup_hash(user, secret, code)
    locked = user["locked_until"] is not None and user["locked_until"] > iso_now()
    if locked:
        await _code_failed(services, user, ip, locked=True)
    if not await _use(services, user["id"], step, backup_hash):
        await _code_failed(services, user, ip, locked=False)
    return await finish_login(services, user, ip=ip)


def _matching_backup_hash(user: Row, secret: str, code: str) -> str | None:
    """The stored digest `code` matches (every entry is compared, in constant time), or None."""
    digest = totp.backup_code_digest(secret, code)
    stored = user["totp_backup_codes"]
    if digest is None or not stored:
        return None
    try:
        digests = json.loads(stored)
    except ValueError:
        log.error("Backup codes of user %s are not a JSON array", user["id"])
        return None
    found: str | None = None
    for candidate in digests if isinstance(digests, list) else []:
        if isinstance(candidate, str) and hmac.compare_digest(candidate, digest):
            found = candidate
    return found


async def _use(services: Services, user_id: str, step: int | None, backup_hash: str | None) -> bool:
    """Spend the matched code: its time step, or the backup code. False for no match or a
    code already spent (a replay, or a concurrent request that used it first)."""
    if step is not None:
        return await totp_store.claim_step(services.db, user_id, step)
    if backup_hash is not None:
        return await totp_store.consume_backup_code(services.db, user_id, backup_hash)
    return False


async def _code_failed(services: Services, user: Row, ip: str, *, locked: bool) -> NoReturn:
    """Count the failure (not while locked, as for passwords), audit it, and refuse."""
    metadata: dict[str, object]
    if locked:
        metadata = {"locked": True}
    else:
        attempts = await users.record_failed_login(
            services.db,
            user["id"],
            now=iso_now(),
            lock_until=to_iso(datetime.now(UTC) + LOCKOUT_DURATION),
            threshold=LOCKOUT_THRESHOLD,
        )
        metadata = {"attempts": attempts}
        if attempts >= LOCKOUT_THRESHOLD:
            log.warning("Account %s locked after %d failed attempts", user["username"], attempts)
    await audit(services.db, "totp_verify_failed", user_id=user["id"], ip=ip, metadata=metadata)
    log.warning(
        "TOTP verification failed",
        extra={"action": "totp_verify_failed", "username": user["username"], "ip": ip},
    )
    raise AgentImError(401, INVALID_CODE)
