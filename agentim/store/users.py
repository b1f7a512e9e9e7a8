"""SQL for users: lookups, lockout counters (D9), profile and admin updates, deletion (§5.7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from agentim.store.db import Conn, Row
from agentim.store.updates import update_columns

# Columns an update may set; the names are interpolated into SQL, so only these are allowed.
UPDATABLE_COLUMNS: Final = frozenset(
    {"display_name", "avatar_url", "role", "password_hash", "max_ws_connections", "max_gateways"}
)


async def get_user_by_username(conn: Conn, username: str) -> Row | None:
    return await conn.fetchrow("SELECT * FROM users WHERE username = $1", username)


async def get_user(conn: Conn, user_id: str) -> Row | None:
    return await conn.fetchrow("SELECT * FROM users WHERE id = $1", user_id)


async def get_role(conn: Conn, user_id: str) -> str | None:
    role = await conn.fetchval("SELECT role FROM users WHERE id = $1", user_id)
    return str(role) if role is not None else None


async def insert_user(
    conn: Conn,
    *,
    user_id: str,
    username: str,
    password_hash: str,
    display_name: str,
    role: str,
    now: str,
) -> None:
    await conn.execute(
        "INSERT INTO users (id, username, password_hash, display_name, role, created_at, "
        "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        user_id,
        username,
        password_hash,
        display_name,
        role,
        now,
    )


async def update_admin_seed(
    conn: Conn, user_id: str, *, password_hash: str, role: str, now: str
) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2, role = $3, updated_at = $4 WHERE id = $1",
        user_id,
        password_hash,
        role,
        now,
    )


async def record_failed_login(
    conn: Conn, user_id: str, *, now: str, lock_until: str, threshold: int
) -> int:
    """Count one wrong password atomically; lock at `threshold`. Returns the new count.

    A lock that has expired starts the count again from zero (DIFFERENCES D9), so the failure
    after an expired lock is attempt 1 and clears the stale `locked_until`.
    """
    attempts = await conn.fetchval(
        "WITH cur AS (SELECT id, CASE WHEN locked_until IS NOT NULL AND locked_until <= $2 "
        "THEN 1 ELSE failed_login_attempts + 1 END AS n, "
        "locked_until IS NOT NULL AND locked_until <= $2 AS expired "
        "FROM users WHERE id = $1 FOR UPDATE) "
        "UPDATE users u SET failed_login_attempts = cur.n, locked_until = CASE "
        "WHEN cur.n >= $4 THEN $3 WHEN cur.expired THEN NULL ELSE u.locked_until END "
        "FROM cur WHERE u.id = cur.id RETURNING u.failed_login_attempts",
        user_id,
        now,
        lock_until,
        threshold,
    )
    return int(attempts or 0)


async def reset_failed_logins(conn: Conn, user_id: str) -> None:
    await conn.execute(
        "UPDATE users SET failed_login_attempts = 0, locked_until = NULL WHERE id = $1", user_id
    )


async def update_user(conn: Conn, user_id: str, changes: Mapping[str, Any], now: str) -> Row | None:
    """Set `changes` (column → value, columns from UPDATABLE_COLUMNS) and `updated_at`.

    Returns the updated row, or None when the user does not exist.
    """
    return await update_columns(
        conn, "users", user_id, changes, updatable=UPDATABLE_COLUMNS, now=now
    )


async def upgrade_password_hash(conn: Conn, user_id: str, old: str, new: str) -> None:
    """Replace an imported (argon2) hash by a bcrypt one of the same password, unless the
    password changed meanwhile. Not a profile change: updated_at stays."""
    await conn.execute(
        "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
        user_id,
        old,
        new,
    )


async def list_users(conn: Conn, *, limit: int, offset: int) -> list[Row]:
    return await conn.fetch(
        "SELECT * FROM users ORDER BY created_at ASC, id ASC LIMIT $1 OFFSET $2", limit, offset
    )


async def search_users(conn: Conn, user_id: str, text: str, *, limit: int) -> list[Row]:
    """Other users whose username or display name contains `text`, case-insensitively.

    `%`, `_` and `\\` in `text` match themselves (AgentIM passes them on as wildcards).
    """
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return await conn.fetch(
        "SELECT id, username, display_name, avatar_url FROM users WHERE id <> $1 "
        "AND (username ILIKE $2 OR display_name ILIKE $2) ORDER BY username LIMIT $3",
        user_id, pattern, limit,
    )  # fmt: skip


async def count_users(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM users"))


async def list_user_file_urls(conn: Conn, user_id: str) -> list[str]:
    """URLs of the files a user deletion removes: attachments of messages in the rooms the user
    created, and the user's orphan uploads (api.md §5.7)."""
    rows = await conn.fetch(
        "SELECT a.url FROM message_attachments a JOIN messages m ON m.id = a.message_id "
        "JOIN rooms r ON r.id = m.room_id WHERE r.created_by_id = $1 "
        "UNION SELECT url FROM message_attachments WHERE uploaded_by = $1 AND message_id IS NULL",
        user_id,
    )
    return [str(row["url"]) for row in rows]


async def delete_user_and_content(tx: Conn, user_id: str) -> bool:
    """Every step of api.md §5.7 in order; run inside one transaction. False if no such user."""
    steps = (
        "DELETE FROM rooms WHERE created_by_id = $1",
        "DELETE FROM tasks WHERE created_by_id = $1",
        "UPDATE tasks SET assignee_id = NULL, assignee_type = NULL WHERE assignee_id = $1",
        "DELETE FROM room_members WHERE member_id = $1 AND member_type = 'user'",
        "DELETE FROM message_attachments WHERE uploaded_by = $1 AND message_id IS NULL",
        "UPDATE message_attachments SET uploaded_by = NULL WHERE uploaded_by = $1",
    )
    for statement in steps:
        await tx.execute(statement, user_id)
    status = await tx.execute("DELETE FROM users WHERE id = $1", user_id)
    return status.endswith(" 1")
