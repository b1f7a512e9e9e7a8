"""Migrations: recorded once, re-running is a no-op, a failing file leaves nothing behind."""

from __future__ import annotations

import pytest

from agentim.store.db import DbError
from agentim.store.schema import (
    Migration,
    _apply_one,
    apply_migrations,
    load_migrations,
    migrations_dir,
)
from tests.helpers import RunningHub

SEED_NAMES = {
    ("users", "failed_login_attempts"),
    ("users", "locked_until"),
    ("audit_log", "action"),
    ("audit_log", "user_id"),
    ("audit_log", "created_at"),
}


async def test_every_migration_is_recorded_and_rerunning_applies_nothing(hub: RunningHub) -> None:
    db = hub.services.db
    versions = [m.version for m in load_migrations(migrations_dir())]
    recorded = [
        r["version"] for r in await db.fetch("SELECT version FROM schema_migrations ORDER BY 1")
    ]
    assert recorded == versions
    assert await apply_migrations(db) == []


async def test_the_seed_guide_tables_columns_and_index_exist(hub: RunningHub) -> None:
    db = hub.services.db
    columns = {
        (r["table_name"], r["column_name"])
        for r in await db.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        )
    }
    assert columns >= SEED_NAMES
    index = await db.fetchval(
        "SELECT indexname FROM pg_indexes WHERE indexname = $1", "messages_room_id_created_at_idx"
    )
    assert index == "messages_room_id_created_at_idx"


async def test_a_failing_migration_rolls_back_completely(hub: RunningHub) -> None:
    db = hub.services.db
    broken = Migration(
        "9999", "broken", "CREATE TABLE half_applied (x int); SELECT no_such_column FROM users;"
    )
    with pytest.raises(DbError):
        await _apply_one(db, broken)
    assert await db.fetchval("SELECT to_regclass('public.half_applied')") is None
    assert await db.fetchval("SELECT 1 FROM schema_migrations WHERE version = '9999'") is None
