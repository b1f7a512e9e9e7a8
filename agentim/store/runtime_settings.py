"""SQL for the `settings` table: runtime settings saved by an administrator (head-gap C1)."""

from __future__ import annotations

from collections.abc import Mapping

from agentim.store.db import Conn


async def load_all(conn: Conn) -> dict[str, str]:
    """Every stored setting, key → stored text (secrets still sealed)."""
    rows = await conn.fetch("SELECT key, value FROM settings")
    return {row["key"]: row["value"] for row in rows}


async def save_all(conn: Conn, values: Mapping[str, str], *, user_id: str) -> None:
    """Insert or replace each setting (call inside a transaction: all or none)."""
    await conn.executemany(
        "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, now(), $3) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
        "updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
        [(key, value, user_id) for key, value in values.items()],
    )
