"""One import: read the AgentIM database in one snapshot, write the hub's in one transaction.

Either every table is copied or nothing is (the transaction commits at the end); --dry-run does
the same work and rolls it back, so its counts are exactly what a real run would copy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, Protocol

import attrs
import trio
import triopg

from agentim.auth.crypto import ENC_PREFIX, open_secret, seal
from agentim.importer import source, target
from agentim.importer.plan import TABLES, Fixups, Table, convert, upload_name
from agentim.importer.uploads import FileCounts, copy_files
from agentim.store.bridge import open_bridge
from agentim.store.db import describe_target, open_database
from agentim.store.schema import apply_migrations

BATCH_ROWS: Final = 5000  # rows per COPY into the staging table: bounds memory on big tables
CONNECT_TIMEOUT_S: Final = 10
CLOSE_TIMEOUT_S: Final = 5
STATEMENT_TIMEOUT_S: Final = 600  # one batch; a 10k-row batch takes well under a second


class Progress(Protocol):
    def start(self, table: str, total: int) -> None: ...
    def advance(self, table: str, rows: int) -> None: ...


class NoProgress:
    def start(self, table: str, total: int) -> None:
        pass

    def advance(self, table: str, rows: int) -> None:
        pass


@attrs.frozen
class ImportOptions:
    hub_url: str
    source_url: str
    upload_dir: Path  # the hub's UPLOAD_DIR
    uploads: Path | None = None  # AgentIM's upload folder, when files are to be copied
    dry_run: bool = False
    hub_key: str | None = None  # the hub's ENCRYPTION_KEY
    source_key: str | None = None  # AgentIM's ENCRYPTION_KEY, when it differs from the hub's


@attrs.define
class TableCounts:
    table: str
    source: int = 0  # rows in AgentIM
    copied: int = 0  # new to the hub (or, in a dry run, that would be)

    @property
    def present(self) -> int:
        return self.source - self.copied


@attrs.define
class Secrets:
    resealed: int = 0  # opened with AgentIM's key (or plaintext) and sealed with the hub's
    unreadable: int = 0  # encrypted, and opens with neither key: copied as is


@attrs.define
class Report:
    version: str = ""
    source: str = ""
    dry_run: bool = False
    migrations: list[str] = attrs.field(factory=list)
    tables: list[TableCounts] = attrs.field(factory=list)
    skipped: list[str] = attrs.field(factory=list)  # AgentIM tables absent from the source
    merged_users: list[str] = attrs.field(factory=list)  # usernames the hub already had
    secrets: Secrets = attrs.field(factory=Secrets)
    files: FileCounts | None = None
    file_names: set[str] = attrs.field(factory=set)


def secret_sealer(
    hub_key: str | None, source_key: str | None, counts: Secrets
) -> Callable[[str], str]:
    """How a router's stored API key is brought to the hub: AgentIM and the hub use the same
    `enc:` format and key derivation (auth/crypto.py), so with the same ENCRYPTION_KEY a value
    is copied unchanged. Only a value that needs it is re-encrypted: one sealed with another key
    (given as source_key), or plaintext when the hub has a key."""

    def reseal(stored: str) -> str:
        if not stored.startswith(ENC_PREFIX):
            if hub_key is None:
                return stored
            counts.resealed += 1
            return seal(stored, hub_key)
        if open_secret(stored, hub_key) is not None:
            return stored
        plain = open_secret(stored, source_key) if source_key else None
        if plain is None:
            counts.unreadable += 1
            return stored
        counts.resealed += 1
        return seal(plain, hub_key)

    return reseal


@asynccontextmanager
async def _connected(url: str) -> AsyncIterator[Any]:
    conn = triopg.connect(url, timeout=CONNECT_TIMEOUT_S, command_timeout=STATEMENT_TIMEOUT_S)
    with trio.fail_after(CONNECT_TIMEOUT_S + 1):
        await conn.__aenter__()
    try:
        yield conn
    finally:
        with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
            await conn.close()


async def _source_users(src: Any) -> list[tuple[str, str]]:
    rows = await src.fetch("SELECT id, username FROM users")
    return [(row["id"], row["username"]) for row in rows]


def _collect_files(table: Table, rows: list[Any], names: set[str]) -> None:
    column = {"users": "avatar_url", "message_attachments": "url"}.get(table.hub)
    if column is None:
        return
    index = table.names.index(column)
    names.update(name for row in rows if (name := upload_name(row[index])) is not None)


async def _copy_table(
    src: Any, hub: Any, schema: source.SourceSchema, table: Table, fixups: Fixups,
    report: Report, progress: Progress,
) -> None:  # fmt: skip
    counts = TableCounts(table.hub, source=await source.count(src, table))
    progress.start(table.hub, counts.source)
    await target.prepare(hub, table)
    cursor = await src.cursor(schema.select(table))
    while rows := await cursor.fetch(BATCH_ROWS):
        converted = [convert(table, row, fixups) for row in rows]
        _collect_files(table, converted, report.file_names)
        counts.copied += await target.write(hub, table, converted)
        progress.advance(table.hub, len(rows))
    report.tables.append(counts)


async def _copy_all(
    src: Any, hub: Any, options: ImportOptions, report: Report, progress: Progress
) -> None:
    schema = await source.describe(src)
    report.version = schema.version
    await target.lock(hub)
    if options.dry_run:
        report.migrations = await target.apply_pending_migrations(hub)
    source_users = await _source_users(src)
    user_ids = await target.hub_accounts(hub, source_users)
    report.merged_users = sorted(
        username for user_id, username in source_users if user_id in user_ids
    )
    fixups = Fixups(
        user_ids=user_ids,
        seal_secret=secret_sealer(options.hub_key, options.source_key, report.secrets),
    )
    for table in TABLES:
        if not schema.has(table):
            report.skipped.append(table.source)
            continue
        await _copy_table(src, hub, schema, table, fixups, report, progress)


class _DryRunRollback(Exception):
    pass


async def import_agentim(options: ImportOptions, progress: Progress | None = None) -> Report:
    """Copy the AgentIM database at `options.source_url` into the hub's; see the module doc."""
    report = Report(source=describe_target(options.source_url), dry_run=options.dry_run)
    async with open_bridge():
        if not options.dry_run:
            async with open_database(options.hub_url, pool_size=2) as db:
                report.migrations = await apply_migrations(db)
        async with _connected(options.source_url) as src, _connected(options.hub_url) as hub:
            await _in_transactions(src, hub, options, report, progress or NoProgress())
            if not options.dry_run:
                await target.analyze(hub)  # fresh planner statistics after a bulk load
    if options.uploads is not None:
        report.files = await copy_files(
            report.file_names, options.uploads, options.upload_dir, dry_run=options.dry_run
        )
    return report


async def _in_transactions(
    src: Any, hub: Any, options: ImportOptions, report: Report, progress: Progress
) -> None:
    try:
        async with (
            src.transaction(isolation="repeatable_read", readonly=True),
            hub.transaction(),
        ):
            await _copy_all(src, hub, options, report, progress)
            if options.dry_run:
                raise _DryRunRollback
    except _DryRunRollback:
        pass
