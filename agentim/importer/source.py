"""Reading an AgentIM database: its schema version, found from its column types, and its rows.

One reader serves both versions: each column is selected by an expression chosen from the type
the source database has for it (information_schema), so a database migrated part of the way
between 728c8f5 and 631a1ad (its 0023 made JSON columns jsonb before later migrations made
timestamps timestamptz) reads as well as either end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from agentim.importer.plan import TABLES, Column, Table

# to_char of a UTC timestamp as JavaScript's toISOString writes it, which is what the hub stores
_ISO_FORMAT: Final = """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"""
_TIMESTAMPS: Final = frozenset({"timestamp with time zone", "timestamp without time zone"})
_JSON: Final = frozenset({"json", "jsonb"})
V728: Final = "728c8f5 (text timestamps, JSON in text)"
V631: Final = "631a1ad (timestamptz, jsonb)"
MIXED: Final = "between 728c8f5 and 631a1ad (some columns converted)"


class SourceError(Exception):
    """The source is not an AgentIM database this importer knows; the message says why."""


@attrs.frozen
class SourceSchema:
    """Column name -> PostgreSQL type, per AgentIM table present in the source."""

    types: Mapping[str, Mapping[str, str]]

    @property
    def version(self) -> str:
        converted = [
            kind in _TIMESTAMPS or kind in _JSON
            for table in TABLES
            for column in table.columns
            if column.kind in ("ts", "json")
            and (kind := self.types.get(table.source, {}).get(column.name)) is not None
        ]
        if converted and all(converted):
            return V631
        return MIXED if any(converted) else V728

    def has(self, table: Table) -> bool:
        return table.source in self.types

    def select(self, table: Table) -> str:
        """SELECT of the table's columns in `table.columns` order, values as the hub stores them."""
        columns = self.types[table.source]
        parts = ", ".join(_expression(column, columns.get(column.name)) for column in table.columns)
        order = "id" if "id" in columns else ", ".join(sorted(table.required))
        return f'SELECT {parts} FROM "{table.source}" ORDER BY {order}'


def _expression(column: Column, kind: str | None) -> str:
    name = f'"{column.name}"'
    if kind is None:  # an older schema without this column
        return "NULL" if column.default is None else _literal(column)
    if kind in _TIMESTAMPS:
        zone = " AT TIME ZONE 'UTC'" if kind == "timestamp with time zone" else ""
        return f"to_char({name}{zone}, {_ISO_FORMAT})"
    if kind in _JSON:
        return f"{name}::text"
    return name


def _literal(column: Column) -> str:
    value = column.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


_COLUMNS_SQL: Final = """
SELECT table_name, column_name, data_type
  FROM information_schema.columns
 WHERE table_schema = current_schema() AND table_name = ANY($1::text[])
"""


async def describe(conn: Any) -> SourceSchema:
    rows = await conn.fetch(_COLUMNS_SQL, [table.source for table in TABLES])
    types: dict[str, dict[str, str]] = {}
    for row in rows:
        types.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
    schema = SourceSchema(types)
    for table in TABLES:
        present = types.get(table.source)
        if present is None:
            if table.hub in ("users", "rooms", "messages"):
                raise SourceError(f"Not an AgentIM database: table {table.source} not found")
            continue
        missing = sorted(table.required - present.keys())
        if missing:
            raise SourceError(
                f"Not an AgentIM database: {table.source} has no {', '.join(missing)} column"
            )
    return schema


async def count(conn: Any, table: Table) -> int:
    return int(await conn.fetchval(f'SELECT count(*) FROM "{table.source}"'))
