"""What the operator sees: a progress bar per table while copying (rich, on a terminal only),
then a plain summary, one line per table, that reads the same in a terminal and in a log."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from agentim.importer.run import Report


class RichProgress:
    """A bar per table on stderr. rich draws nothing when stderr is not a terminal (a log, a
    pipe, a test), where the summary alone is printed."""

    def __init__(self) -> None:
        console = Console(stderr=True)
        self._bars = Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def start(self, table: str, total: int) -> None:
        self._tasks[table] = self._bars.add_task(table, total=total)

    def advance(self, table: str, rows: int) -> None:
        self._bars.advance(self._tasks[table], rows)


def summary(report: Report) -> list[str]:
    verb = "would copy" if report.dry_run else "copied"
    lines = [
        f"{'Dry run: nothing was written. ' if report.dry_run else ''}"
        f"AgentIM database at {report.source}, schema {report.version}",
    ]
    if report.migrations:
        state = "would be applied" if report.dry_run else "applied"
        lines.append(f"Hub migrations {state} first: {', '.join(report.migrations)}")
    for counts in report.tables:
        lines.append(
            f"{counts.table:<20} {counts.source:>8} in AgentIM, {verb} {counts.copied:>8},"
            f" already in the hub {counts.present:>8}"
        )
    for table in report.skipped:
        lines.append(f"{table:<20} not in this AgentIM database, skipped")
    if report.merged_users:
        lines.append(
            "Users the hub already has (kept as they are; their AgentIM rows now belong to"
            f" the hub's account): {', '.join(report.merged_users)}"
        )
    if report.secrets.resealed:
        lines.append(f"Router API keys re-encrypted for this hub's ENCRYPTION_KEY: "
                     f"{report.secrets.resealed}")  # fmt: skip
    if report.secrets.unreadable:
        lines.append(
            f"Warning: {report.secrets.unreadable} router API keys do not open with this hub's"
            " ENCRYPTION_KEY; set ENCRYPTION_KEY to the value AgentIM used (or pass"
            " --from-encryption-key-env) and import again"
        )
    if report.files is not None:
        files = report.files
        lines.append(
            f"{'uploads':<20} {len(report.file_names):>8} referenced, {verb} {files.copied:>8},"
            f" already in the hub {files.present:>8}, missing {len(files.missing)}"
        )
        for name in files.missing[:20]:
            lines.append(f"Warning: upload not found in the AgentIM folder: {name}")
    elif report.file_names:
        lines.append(f"{len(report.file_names)} uploaded files are referenced; pass --uploads"
                     " <AgentIM UPLOAD_DIR> to copy them")  # fmt: skip
    return lines
