"""SQL for durable access-token revocation (`revoked_tokens`, DIFFERENCES D7, D23).

A user's cut-off is one row (`id = 'user:<userId>'`, `token_hash = '*'`) that only moves
forward; one revoked access token (a logout, D23) is a row `id = 'token:<sha256>'` kept until
the token's own expiry. Times go in and out as epoch milliseconds, computed exactly in SQL.
"""

from __future__ import annotations

from typing import Final

from agentim.store.db import Conn

USER_CUTOFF: Final = "*"  # token_hash of a user's cut-off row; a single token's row has its digest
# epoch ms ↔ timestamptz, exact: interval arithmetic in, numeric extract out
_AT_MS: Final = "(timestamptz 'epoch' + {} * interval '1 millisecond')"
_MS_OF: Final = "(extract(epoch FROM {}) * 1000)::bigint"


def _cutoff_id(user_id: str) -> str:
    return f"user:{user_id}"


async def record_cutoff(conn: Conn, user_id: str, cutoff_ms: int, ttl_s: int) -> None:
    """Every access token of the user issued at or before `cutoff_ms` is revoked.

    Kept `ttl_s` (the access-token lifetime) past the cut-off; an older cut-off never
    replaces a newer one.
    """
    at = _AT_MS.format("$3::bigint")
    await conn.execute(
        f"INSERT INTO revoked_tokens (id, user_id, token_hash, revoked_at, expires_at) "
        f"VALUES ($1, $2, '{USER_CUTOFF}', {at}, {at} + $4::bigint * interval '1 second') "
        "ON CONFLICT (id) DO UPDATE SET "
        "revoked_at = GREATEST(revoked_tokens.revoked_at, excluded.revoked_at), "
        "expires_at = GREATEST(revoked_tokens.expires_at, excluded.expires_at)",
        _cutoff_id(user_id), user_id, cutoff_ms, ttl_s,
    )  # fmt: skip


async def get_cutoff(conn: Conn, user_id: str) -> tuple[int, int] | None:
    """The user's unexpired cut-off: (epoch ms, seconds until the row expires), or None."""
    row = await conn.fetchrow(
        f"SELECT {_MS_OF.format('revoked_at')} AS cutoff_ms, "
        "ceil(extract(epoch FROM expires_at - now()))::bigint AS remaining_s "
        "FROM revoked_tokens WHERE id = $1 AND expires_at > now()",
        _cutoff_id(user_id),
    )
    if row is None:
        return None
    return int(row["cutoff_ms"]), max(1, int(row["remaining_s"]))


def _token_id(token_hash: str) -> str:
    return f"token:{token_hash}"


async def record_token(conn: Conn, user_id: str, token_hash: str, expires_ms: int) -> None:
    """Exactly one access token (by digest) is revoked until `expires_ms`, its own expiry."""
    await conn.execute(
        "INSERT INTO revoked_tokens (id, user_id, token_hash, revoked_at, expires_at) "
        f"VALUES ($1, $2, $3, now(), {_AT_MS.format('$4::bigint')}) "
        "ON CONFLICT (id) DO NOTHING",
        _token_id(token_hash), user_id, token_hash, expires_ms,
    )  # fmt: skip


async def token_revoked(conn: Conn, token_hash: str) -> int | None:
    """Seconds left on the token's unexpired revocation row, or None when it has none."""
    row = await conn.fetchrow(
        "SELECT ceil(extract(epoch FROM expires_at - now()))::bigint AS remaining_s "
        "FROM revoked_tokens WHERE id = $1 AND expires_at > now()",
        _token_id(token_hash),
    )
    return None if row is None else max(1, int(row["remaining_s"]))


async def delete_expired(conn: Conn) -> int:
    """Drop rows past `expires_at` (every token they cover has expired); how many."""
    status = await conn.execute("DELETE FROM revoked_tokens WHERE expires_at <= now()")
    return int(status.rsplit(" ", 1)[-1]) if status.startswith("DELETE") else 0
