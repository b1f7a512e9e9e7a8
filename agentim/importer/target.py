"""Writing the hub's database: rows go through a staging table (binary COPY), then into the
hub's table with ON CONFLICT DO NOTHING, so a row the hub already has (same primary key or
unique key) is left as it is. That is what makes a second run copy nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import trio

from agentim.importer.plan import TABLES, Row, Table
from agentim.store.schema import load_migrations, migrations_dir

IMPORT_LOCK_KEY: Final = 0x616D696D  # one import at a time per hub database


def _staging(table: Table) -> str:
    return f'"import_{table.hub}"'


async def lock(conn: Any) -> None:
    """Wait for any other import into this database to finish (held until the transaction ends)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", IMPORT_LOCK_KEY)


async def apply_pending_migrations(conn: Any) -> list[str]:
    """Run the migrations the database lacks inside the caller's transaction (for --dry-run,
    whose transaction is rolled back): the same files `agentim migrate` applies."""
    migrations = load_migrations(await trio.to_thread.run_sync(migrations_dir))
    done: set[str] = set()
    if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
    pending = [m for m in migrations if m.version not in done]
    for migration in pending:
        await conn.execute(migration.sql)
    return [m.version for m in pending]


async def hub_accounts(conn: Any, users: Sequence[tuple[str, str]]) -> dict[str, str]:
    """AgentIM user id -> hub user id, for each AgentIM user (id, username) whose username the
    hub already has under another id."""
    rows = await conn.fetch(
        "SELECT u.id, s.source_id FROM users u"
        " JOIN unnest($1::text[], $2::text[]) AS s(source_id, username) USING (username)"
        " WHERE u.id <> s.source_id",
        [user_id for user_id, _ in users],
        [username for _, username in users],
    )
    return {row["source_id"]: row["id"] for row in rows}


async def prepare(conn: Any, table: Table) -> None:
    columns = ", ".join(f'"{name}"' for name in table.names)
    await conn.execute(
        f"CREATE TEMP TABLE {_staging(table)} ON COMMIT DROP AS"
        f' SELECT {columns} FROM "{table.hub}" WITH NO DATA'
    )


async def write(conn: Any, table: Table, rows: Sequence[Row]) -> int:
    """Insert a batch; returns how many rows were new to the hub."""
    staging = _staging(table)
    await conn.copy_records_to_table(staging.strip('"'), records=rows, columns=list(table.names))
    columns = ", ".join(f'"{name}"' for name in table.names)
    status = await conn.execute(
        f'INSERT INTO "{table.hub}" ({columns}) SELECT {columns} FROM {staging}'
        " ON CONFLICT DO NOTHING"
    )
    await conn.execute(f"TRUNCATE {staging}")
    return int(status.rsplit(" ", 1)[-1])


async def analyze(conn: Any) -> None:
    for table in TABLES:
        await conn.execute(f'ANALYZE "{table.hub}"')
