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

from agentim.store.lane import ConnectionLane, ends_session

log = logging.getLogger("DB")

Row = Mapping[str, Any]
CONNECT_ATTEMPTS: Final = 3  # api.md §16.2: 3 tries, 1 s apart
CONNECT_RETRY_DELAY_S: Final = 1.0
UNIQUE_VIOLATION: Final = "23505"
FOREIGN_KEY_VIOLATION: Final = "23503"


class StartupError(Exception):
    """A fatal start-up problem; its message is printed as is (`Error: …`) and we exit 1."""


class DbError(Exception):
    """A database error with its SQLSTATE, so callers map constraint violations without asyncpg.

    `unavailable` is set when PostgreSQL could not be reached or ended the session (a restart,
    a network cut): the statement got no answer, and a later one may succeed.
    """

    def __init__(self, sqlstate: str | None, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.unavailable = unavailable


# What a statement raises when the connection, not the statement, failed: the socket (refused,
# reset, timed out), the pool proxy, or the protocol (asyncpg's InternalClientError, such as
# "cannot switch to state …; another operation is in progress" on a connection cut mid-reply).
_CONNECTION_FAILURES: Final = (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def as_db_error(exc: Exception) -> DbError:
    """The DbError for an asyncpg error or one of `_CONNECTION_FAILURES`. asyncpg's other
    InterfaceErrors (a bad argument, for instance) are the caller's bug, not an outage."""
    if isinstance(exc, asyncpg.PostgresError):
        return DbError(getattr(exc, "sqlstate", None), str(exc), unavailable=ends_session(exc))
    lost = isinstance(exc, OSError | asyncpg.InternalClientError)
    return DbError(None, str(exc) or type(exc).__name__, unavailable=lost)


class Outage:
    """PostgreSQL's reachability as statements find it: a lost server is logged once at warning
    level (not once per failed statement), and once more when a statement succeeds again."""

    def __init__(self) -> None:
        self.since: float | None = None  # trio time of the first failure, while unavailable

    def failed(self, error: DbError) -> None:
        if self.since is None:
            self.since = trio.current_time()
            log.warning("PostgreSQL unavailable, statements fail until it is back: %s", error,
                        extra={"sqlstate": error.sqlstate})  # fmt: skip
        else:
            log.debug("Query failed, PostgreSQL unavailable: %s", error)

    def answered(self) -> None:
        if self.since is not None:
            log.warning("PostgreSQL available again after %.1f s",
                        trio.current_time() - self.since)  # fmt: skip
            self.since = None


def _logged(error: DbError, outage: Outage) -> DbError:
    """Log a failed statement under `DB`: at error level, except constraint violations (SQLSTATE
    class 23, answers the callers turn into 4xx) and an unreachable server (logged by `outage`)."""
    if error.unavailable:
        outage.failed(error)
    elif not (error.sqlstate or "").startswith("23"):
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

    def __init__(self, target: Any, outage: Outage) -> None:
        self._target = target
        self._outage = outage

    async def _run(self, method: str, *args: Any) -> Any:
        return await getattr(self._target, method)(*args)

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            result = await self._run(method, *args)
        except (asyncpg.PostgresError, *_CONNECTION_FAILURES) as exc:
            raise _logged(as_db_error(exc), self._outage) from exc
        self._outage.answered()
        return result

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
        super().__init__(pool, Outage())
        self._pool = pool
        # triopg keeps the asyncpg pool it wraps here; the lane borrows from that same pool
        self.lane = ConnectionLane(pool._asyncpg_pool, lane_size)
        self.url = url

    async def _run(self, method: str, *args: Any) -> Any:
        return await self.lane.call(method, *args)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        try:
            async with self._pool.acquire() as conn:
                yield _Wrapped(conn, self._outage)
        except (asyncpg.PostgresError, *_CONNECTION_FAILURES) as exc:
            raise _logged(as_db_error(exc), self._outage) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A connection inside one transaction: committed on exit, rolled back on error.

        Connecting, BEGIN, COMMIT and ROLLBACK fail as DbError too (PostgreSQL restarting).
        """
        try:
            async with self._begin() as conn:
                yield _Wrapped(conn, self._outage)
        except (asyncpg.PostgresError, *_CONNECTION_FAILURES) as exc:
            raise _logged(as_db_error(exc), self._outage) from exc

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[Any]:
        """A pooled connection inside BEGIN. A connection the server ended while it sat in the
        pool may refuse to start BEGIN (see lane.py); it is terminated and another one tried,
        since nothing reached the server."""
        attempts = self._pool._asyncpg_pool.get_max_size() + 1
        for attempt in range(1, attempts + 1):
            async with self._pool.acquire() as conn:
                began = False
                try:
                    async with conn.transaction():
                        began = True
                        yield conn
                        return
                except asyncpg.InternalClientError:
                    if began or attempt == attempts:
                        raise
                    conn.terminate()  # the pool opens a new connection in its place


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
