"""The one builder of "UPDATE <table> SET <changed columns>, updated_at" statements.

Column names come from each table's allow-list (code, never input); values are bound as
parameters.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from agentim.store.db import Conn, Row


async def update_columns(
    conn: Conn, table: str, row_id: str, changes: Mapping[str, Any], *,
    updatable: Collection[str], now: str,
) -> Row | None:  # fmt: skip
    """Set `changes` (column → value) and `updated_at` on the row with id `row_id`.

    Args:
        table: the table (a constant of the calling store module).
        updatable: the columns a caller may change; any other name is a bug.
        now: the new `updated_at`.

    Returns:
        The updated row, or None when no row has that id.

    Raises:
        ValueError: a column outside `updatable`.
    """
    unknown = set(changes) - set(updatable)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    columns = list(changes)
    assignments = [f"{name} = ${i}" for i, name in enumerate(columns, start=3)]
    return await conn.fetchrow(
        f"UPDATE {table} SET {', '.join(['updated_at = $2', *assignments])} "
        "WHERE id = $1 RETURNING *",
        row_id, now, *(changes[name] for name in columns),
    )  # fmt: skip
