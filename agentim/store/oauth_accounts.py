"""SQL for oauth_accounts (head-gap A5, A6, C5): provider accounts linked to users.

The provider tokens arrive here already sealed (auth/crypto.py); nothing here sees them in clear.
"""

from __future__ import annotations

from typing import Final

from agentim.store.db import Conn, Row

# The columns GET /api/users/me/oauth-accounts shows (never the sealed tokens).
PUBLIC_COLUMNS: Final = (
    "id, provider, provider_account_id, email, display_name, avatar_url, created_at, updated_at"
)


async def get_by_provider_account(conn: Conn, provider: str, account_id: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT * FROM oauth_accounts WHERE provider = $1 AND provider_account_id = $2",
        provider,
        account_id,
    )


async def get_for_user(conn: Conn, user_id: str, provider: str) -> Row | None:
    return await conn.fetchrow(
        "SELECT * FROM oauth_accounts WHERE user_id = $1 AND provider = $2", user_id, provider
    )


async def list_for_user(conn: Conn, user_id: str) -> list[Row]:
    return await conn.fetch(
        f"SELECT {PUBLIC_COLUMNS} FROM oauth_accounts WHERE user_id = $1 ORDER BY created_at, id",
        user_id,
    )


async def count_for_user(conn: Conn, user_id: str) -> int:
    count = await conn.fetchval("SELECT count(*) FROM oauth_accounts WHERE user_id = $1", user_id)
    return int(count or 0)


async def insert_account(
    conn: Conn,
    *,
    account_id: str,
    user_id: str,
    provider: str,
    provider_account_id: str,
    profile: dict[str, str | None],
    now: str,
) -> None:
    """`profile` holds email, display_name, avatar_url and the sealed access/refresh tokens."""
    await conn.execute(
        "INSERT INTO oauth_accounts (id, user_id, provider, provider_account_id, email, "
        "display_name, avatar_url, access_token, refresh_token, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        account_id,
        user_id,
        provider,
        provider_account_id,
        profile["email"],
        profile["display_name"],
        profile["avatar_url"],
        profile["access_token"],
        profile["refresh_token"],
        now,
    )


async def update_profile(
    conn: Conn, account_id: str, profile: dict[str, str | None], now: str
) -> None:
    await conn.execute(
        "UPDATE oauth_accounts SET email = $2, display_name = $3, avatar_url = $4, "
        "access_token = $5, refresh_token = $6, updated_at = $7 WHERE id = $1",
        account_id,
        profile["email"],
        profile["display_name"],
        profile["avatar_url"],
        profile["access_token"],
        profile["refresh_token"],
        now,
    )


async def delete_for_user(conn: Conn, user_id: str, provider: str) -> int:
    result = await conn.execute(
        "DELETE FROM oauth_accounts WHERE user_id = $1 AND provider = $2", user_id, provider
    )
    return int(str(result).rsplit(" ", 1)[-1])


async def lock_user(conn: Conn, user_id: str) -> Row | None:
    """The user row, locked for the transaction (two unlinks cannot both pass the last-method
    check)."""
    return await conn.fetchrow("SELECT * FROM users WHERE id = $1 FOR UPDATE", user_id)


async def username_taken(conn: Conn, username: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM users WHERE username = $1", username)
    return found is not None


async def insert_oauth_user(
    conn: Conn,
    *,
    user_id: str,
    username: str,
    display_name: str,
    avatar_url: str | None,
    now: str,
) -> None:
    """A user created by an OAuth sign-in: no password (C5), role `user`."""
    await conn.execute(
        "INSERT INTO users (id, username, password_hash, display_name, avatar_url, role, "
        "created_at, updated_at) VALUES ($1, $2, NULL, $3, $4, 'user', $5, $5)",
        user_id,
        username,
        display_name,
        avatar_url,
        now,
    )
