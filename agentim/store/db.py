"""PostgreSQL through triopg (asyncpg on trio-asyncio): a pool, transactions, typed fetches."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import asyncpg
import trio
import triopg

from agentim.store.lane import ConnectionLane

log = logging.getLogger("DB")

Row = Mapping[str, Any]
CONNECT_ATTEMPTS: Final = 3  # api.md §16.2: 3 tries, 1 s apart
CONNECT_RETRY_DELAY_S: Final = 1.0
UNIQUE_VIOLATION: Final = "23505"
FOREIGN_KEY_VIOLATION: Final = "23503"


class StartupError(Exception):
    """A fatal start-up problem; its message is printed as is (`Error: …`) and we exit 1."""


class DbError(Exception):
    """A database error with its SQLSTATE, so callers map constraint violations without asyncpg."""

    def __init__(self, sqlstate: str | None, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _logged(error: DbError) -> DbError:
    """Log a failed statement under `DB` at error level; constraint violations (SQLSTATE class
    23) are answers the callers turn into 4xx, not database errors."""
    if not (error.sqlstate or "").startswith("23"):
        log.error("Query failed: %s", error, extra={"sqlstate": error.sqlstate})
    return error


class Conn(Protocol):
    """What store functions need: a connection or a transaction."""

    async def fetch(self, query: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...
    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None: ...


class _Wrapped:
    """Translate asyncpg errors to DbError at the store boundary."""

    def __init__(self, target: Any) -> None:
        self._target = target

    async def _run(self, method: str, *args: Any) -> Any:
        return await getattr(self._target, method)(*args)

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await self._run(method, *args)
        except asyncpg.PostgresError as exc:
            raise _logged(DbError(getattr(exc, "sqlstate", None), str(exc))) from exc
        except (OSError, asyncpg.InterfaceError) as exc:
            raise _logged(DbError(None, str(exc))) from exc

    async def fetch(self, query: str, *args: Any) -> list[Row]:
        return await self._call("fetch", query, *args)  # type: ignore[no-any-return]

    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        return await self._call("fetchrow", query, *args)  # type: ignore[no-any-return]

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._call("fetchval", query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        return await self._call("execute", query, *args)  # type: ignore[no-any-return]

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        await self._call("executemany", query, args)


class Database(_Wrapped):
    """The pool; its fetch methods each run one statement on a lane connection (lane.py)."""

    def __init__(self, pool: Any, url: str, *, lane_size: int = 1) -> None:
        super().__init__(pool)
        self._pool = pool
        # triopg keeps the asyncpg pool it wraps here; the lane borrows from that same pool
        self.lane = ConnectionLane(pool._asyncpg_pool, lane_size)
        self.url = url

    async def _run(self, method: str, *args: Any) -> Any:
        return await self.lane.call(method, *args)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        async with self._pool.acquire() as conn:
            yield _Wrapped(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A connection inside one transaction: committed on exit, rolled back on error."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield _Wrapped(conn)
        except asyncpg.PostgresError as exc:
            raise _logged(DbError(getattr(exc, "sqlstate", None), str(exc))) from exc


def describe_target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


async def _no_reset(conn: Any) -> None:
    """We keep no session state on pooled connections: skip asyncpg's RESET round trip on every
    release (about 9% of the hub's CPU on the message path)."""


async def _create_pool(url: str, pool_size: int) -> Any:
    pool = triopg.create_pool(
        url, min_size=1, max_size=pool_size, command_timeout=30, reset=_no_reset
    )
    with trio.fail_after(10):
        await pool.__aenter__()
    return pool


async def _connect_with_retry(url: str, pool_size: int) -> Any:
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            return await _create_pool(url, pool_size)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, trio.TooSlowError) as exc:
            log.warning("PostgreSQL connection attempt %d failed: %s", attempt, exc)
            last = exc
        if attempt < CONNECT_ATTEMPTS:
            await trio.sleep(CONNECT_RETRY_DELAY_S)
    if isinstance(last, asyncpg.PostgresError):
        raise StartupError(f"Error: {last}")
    raise StartupError(f"Error: connect ECONNREFUSED {describe_target(url)}")


@asynccontextmanager
async def open_database(url: str, *, pool_size: int) -> AsyncIterator[Database]:
    """Connect (3 tries, 1 s apart) and yield the pool; closed on exit."""
    pool = await _connect_with_retry(url, pool_size)
    db = Database(pool, url, lane_size=max(1, pool_size // 2))
    try:
        yield db
    finally:
        with trio.move_on_after(5, shield=True):
            await db.lane.aclose()
            await pool.__aexit__(None, None, None)
        log.info("Database connection closed")
