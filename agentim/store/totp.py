"""SQL for TOTP two-factor state on `users` (head-gap C6; migration 0006).

Each write is one conditional UPDATE, so two requests racing cannot both enable 2FA, both use
one backup code or both use one time step's code.
"""

from __future__ import annotations

from agentim.store.db import Conn


def _changed(status: str) -> bool:
    return status.endswith(" 1")


async def set_pending_secret(conn: Conn, user_id: str, sealed_secret: str, now: str) -> bool:
    """Store a new secret while 2FA is off. False if 2FA is on (or no such user)."""
    status = await conn.execute(
        "UPDATE users SET totp_secret = $2, totp_last_step = NULL, updated_at = $3 "
        "WHERE id = $1 AND NOT totp_enabled",
        user_id,
        sealed_secret,
        now,
    )
    return _changed(status)


async def enable(
    conn: Conn, user_id: str, *, sealed_secret: str, backup_hashes: str, step: int, now: str
) -> bool:
    """Turn 2FA on with the secret the caller checked a code against. False if 2FA was turned
    on meanwhile or the pending secret changed (a second setup started)."""
    status = await conn.execute(
        "UPDATE users SET totp_enabled = true, totp_backup_codes = $3, totp_last_step = $4, "
        "updated_at = $5 WHERE id = $1 AND NOT totp_enabled AND totp_secret = $2",
        user_id,
        sealed_secret,
        backup_hashes,
        step,
        now,
    )
    return _changed(status)


async def disable(conn: Conn, user_id: str, now: str) -> bool:
    """Turn 2FA off and forget the secret and backup codes. False if it was already off."""
    status = await conn.execute(
        "UPDATE users SET totp_enabled = false, totp_secret = NULL, totp_backup_codes = NULL, "
        "totp_last_step = NULL, updated_at = $2 WHERE id = $1 AND totp_enabled",
        user_id,
        now,
    )
    return _changed(status)


async def claim_step(conn: Conn, user_id: str, step: int) -> bool:
    """Record `step` as used; False if it (or a later step) was used already (a replay)."""
    status = await conn.execute(
        "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_enabled "
        "AND (totp_last_step IS NULL OR totp_last_step < $2)",
        user_id,
        step,
    )
    return _changed(status)


async def consume_backup_code(conn: Conn, user_id: str, code_hash: str) -> bool:
    """Remove one backup code's hash from the user's list; False if it was no longer there."""
    status = await conn.execute(
        "UPDATE users SET totp_backup_codes = (totp_backup_codes::jsonb - $2::text)::text "
        "WHERE id = $1 AND totp_enabled AND totp_backup_codes::jsonb ? $2::text",
        user_id,
        code_hash,
    )
    return _changed(status)
