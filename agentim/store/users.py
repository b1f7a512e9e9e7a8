"""SQL for users."""

from __future__ import annotations

from agentim.store.db import Conn, Row


async def get_user_by_username(conn: Conn, username: str) -> Row | None:
    return await conn.fetchrow("SELECT * FROM users WHERE username = $1", username)


async def get_user(conn: Conn, user_id: str) -> Row | None:
    return await conn.fetchrow("SELECT * FROM users WHERE id = $1", user_id)


async def insert_user(
    conn: Conn, *, user_id: str, username: str, password_hash: str, display_name: str,
    role: str, now: str,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO users (id, username, password_hash, display_name, role, created_at, "
        "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        user_id, username, password_hash, display_name, role, now,
    )  # fmt: skip


async def update_admin_seed(
    conn: Conn, user_id: str, *, password_hash: str, role: str, now: str
) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2, role = $3, updated_at = $4 WHERE id = $1",
        user_id, password_hash, role, now,
    )  # fmt: skip
