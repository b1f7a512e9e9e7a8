"""`agentim import-agentim --from <AgentIM database URL> [--uploads DIR] [--dry-run]`.

The hub's database is DATABASE_URL (or the embedded PostgreSQL in DATA_DIR), its upload folder
UPLOAD_DIR and its key ENCRYPTION_KEY, as for `agentim serve`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

import asyncpg
import trio

from agentim import embedded
from agentim.importer.output import RichProgress, summary
from agentim.importer.run import ImportOptions, Report, import_agentim
from agentim.importer.source import SourceError
from agentim.settings import Settings
from agentim.store.db import StartupError


def add_import_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("import-agentim")
    group.add_argument("--from", dest="source_url", metavar="URL",
                       help="the AgentIM database to copy (postgresql://…)")  # fmt: skip
    group.add_argument("--uploads", type=Path, metavar="DIR",
                       help="AgentIM's UPLOAD_DIR: copy the files its rows point at")  # fmt: skip
    group.add_argument("--dry-run", action="store_true",
                       help="print what would be copied; write nothing")  # fmt: skip
    group.add_argument(
        "--from-encryption-key-env", metavar="NAME",
        help="variable holding AgentIM's ENCRYPTION_KEY, when it differs from the hub's",
    )  # fmt: skip


def options_from(settings: Settings, args: argparse.Namespace, env: Mapping[str, str],
                 hub_url: str) -> ImportOptions:  # fmt: skip
    source_key = None
    if args.from_encryption_key_env:
        source_key = env.get(args.from_encryption_key_env)
        if not source_key:
            raise StartupError(f"Error: {args.from_encryption_key_env} is not set")
    if args.uploads is not None and not args.uploads.is_dir():
        raise StartupError(f"Error: --uploads {args.uploads}: not a directory")
    return ImportOptions(
        hub_url=hub_url,
        source_url=args.source_url,
        upload_dir=settings.upload_dir,
        uploads=args.uploads,
        dry_run=args.dry_run,
        hub_key=settings.encryption_key,
        source_key=source_key,
    )


async def _run(settings: Settings, args: argparse.Namespace, env: Mapping[str, str]) -> Report:
    async with trio.open_nursery() as backing:
        url = settings.database_url or await backing.start(embedded.run_postgres, settings.data_dir)
        if url == args.source_url:
            raise StartupError("Error: --from names the hub's own database")
        with RichProgress() as progress:
            report = await import_agentim(options_from(settings, args, env, url), progress)
        backing.cancel_scope.cancel()
    return report


def _first(error: BaseException) -> BaseException:
    """The first leaf of what may be nested exception groups (one per nursery it left)."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def cmd_import_agentim(settings: Settings, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        report = trio.run(_run, settings, args, env)
    except* SourceError as group:
        raise StartupError(f"Error: {_first(group)}") from None
    except* (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as group:
        raise StartupError(f"Error: import failed: {_first(group)}") from None
    for line in summary(report):
        print(line)
    sys.stdout.flush()
    return 0
