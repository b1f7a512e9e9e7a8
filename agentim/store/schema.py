"""Forward-only SQL migrations from sql/migrations, applied once each and recorded in a table.

Each file runs in its own transaction under an advisory lock, so concurrent hub processes
never apply one twice and a failing file leaves nothing half-applied.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Final

import attrs
import trio

from agentim.protocol.timefmt import iso_now
from agentim.store.db import Database, DbError, StartupError

log = logging.getLogger("DB")

MIGRATIONS_LOCK_KEY: Final = 0x616D6967  # any constant shared by every hub process
_CREATE_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at text NOT NULL
)"""


@attrs.frozen
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """sql/migrations beside the package (source checkout) or in the working directory."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd(), Path("/app")):
        candidate = base / "sql" / "migrations"
        if candidate.is_dir():
            return candidate
    raise StartupError("Error: sql/migrations not found")


def load_migrations(folder: Path) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        version, _, name = path.stem.partition("_")
        found.append(Migration(version, name, path.read_text(encoding="utf-8")))
    return found


async def apply_migrations(db: Database) -> list[str]:
    """Apply every migration not yet recorded; return the versions applied now."""
    folder = await trio.to_thread.run_sync(migrations_dir)
    migrations = await trio.to_thread.run_sync(load_migrations, folder)
    applied: list[str] = []
    for migration in migrations:
        try:
            done = await _apply_one(db, migration)
        except DbError as exc:
            log.error("Migration %s_%s failed: %s", migration.version, migration.name, exc)
            raise StartupError(f"Error: {exc}") from exc
        if done:
            applied.append(migration.version)
            log.info("Applied migration %s_%s", migration.version, migration.name)
    return applied


async def _apply_one(db: Database, migration: Migration) -> bool:
    async with db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock($1)", MIGRATIONS_LOCK_KEY)
        await tx.execute(_CREATE_TABLE)
        done = await tx.fetchval(
            "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
        )
        if done:
            return False
        await tx.execute(migration.sql)
        await tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
            "VALUES ($1, $2, $3, $4)",
            migration.version,
            migration.name,
            migration.checksum,
            iso_now(),
        )
        return True
