"""SQL for refresh tokens: SHA-256 digests grouped in session families (DIFFERENCES D8).

One login starts a family; each refresh marks the presented row rotated and adds its successor
to the same family, so a replayed (rotated) token can revoke exactly that session.
"""

from __future__ import annotations

from agentim.store.db import Conn, Row


async def lock_user_tokens(conn: Conn, user_id: str) -> None:
    """Serialise logins and refreshes of one user until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", user_id)


async def insert_refresh_token(
    conn: Conn,
    *,
    token_id: str,
    user_id: str,
    token_hash: str,
    family_id: str,
    expires_at: str,
    now: str,
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (id, user_id, token_hash, family_id, expires_at, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        token_id,
        user_id,
        token_hash,
        family_id,
        expires_at,
        now,
    )


async def get_refresh_token(conn: Conn, user_id: str, token_hash: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT * FROM refresh_tokens WHERE user_id = $1 AND token_hash = $2 "
        "ORDER BY created_at DESC LIMIT 1",
        user_id,
        token_hash,
    )


async def mark_rotated(conn: Conn, token_id: str, now: str) -> None:
    await conn.execute("UPDATE refresh_tokens SET rotated_at = $2 WHERE id = $1", token_id, now)


async def delete_family(conn: Conn, family_id: str) -> int:
    status = await conn.execute("DELETE FROM refresh_tokens WHERE family_id = $1", family_id)
    return _count(status)


async def delete_user_tokens(conn: Conn, user_id: str) -> int:
    status = await conn.execute("DELETE FROM refresh_tokens WHERE user_id = $1", user_id)
    return _count(status)


async def trim_families(conn: Conn, user_id: str, *, keep: int) -> int:
    """Delete every row of the user's oldest sessions so at most `keep` live tokens remain.

    Live means not rotated; expired rows count until the sweeper removes them (api.md §4.2).
    """
    status = await conn.execute(
        "DELETE FROM refresh_tokens WHERE family_id IN (SELECT family_id FROM refresh_tokens "
        "WHERE user_id = $1 AND rotated_at IS NULL "
        "ORDER BY created_at DESC, id DESC OFFSET $2)",
        user_id,
        keep,
    )
    return _count(status)


async def delete_expired_refresh_tokens(conn: Conn, now: str) -> int:
    """The periodic cleanup (TOKEN_CLEANUP_INTERVAL): timestamps compare as text (§0.3)."""
    status = await conn.execute("DELETE FROM refresh_tokens WHERE expires_at < $1", now)
    return _count(status)


def _count(status: str) -> int:
    """Rows affected, from a command tag such as `DELETE 3`."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
