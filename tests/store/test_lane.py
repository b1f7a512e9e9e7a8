"""The statement lane: failures and cancellations leave it usable; statements run side by side."""

from __future__ import annotations

import gc
import logging

import pytest
import trio

from agentim.store.bridge import open_bridge
from agentim.store.db import Database, DbError, open_database


async def test_a_failed_statement_leaves_the_lane_usable(database_url: str) -> None:
    async with open_bridge(), open_database(database_url, pool_size=2) as db:
        with pytest.raises(DbError) as caught:
            await db.fetchval("SELECT 1 FROM no_such_table")
        assert caught.value.sqlstate == "42P01"
        assert await db.fetchval("SELECT 1 + 1") == 2


async def test_a_cancelled_statement_is_not_reused_mid_query(database_url: str) -> None:
    async with open_bridge(), open_database(database_url, pool_size=2) as db:
        with trio.move_on_after(0.2) as scope:
            await db.fetchval("SELECT pg_sleep(5)")
        assert scope.cancelled_caught
        interrupted = await db.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)'"
        )
        assert interrupted is not None
        # that connection was terminated, not put back: later statements run elsewhere
        for _ in range(5):
            assert await db.fetchval("SELECT pg_backend_pid()") != interrupted


async def test_statements_run_side_by_side_up_to_the_lane_size(database_url: str) -> None:
    async with open_bridge(), open_database(database_url, pool_size=4) as db:
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(2):  # lane size = pool size // 2
                nursery.start_soon(db.fetchval, "SELECT pg_sleep(0.3)")
        assert trio.current_time() - started < 0.55


async def test_a_cancelled_statement_leaves_no_asyncio_complaints(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_bridge(), open_database(database_url, pool_size=2) as db:
        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            for _ in range(3):
                with trio.move_on_after(0.1) as scope:
                    await db.fetchval("SELECT pg_sleep(5)")
                assert scope.cancelled_caught
                assert await db.fetchval("SELECT 40 + 2") == 42
            await trio.sleep(0.2)  # asyncpg's cancel requests finish on the asyncio side
            gc.collect()  # unretrieved future exceptions are reported when collected
    complaints = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert complaints == []


async def _terminate_backend(db: Database, pid: int) -> None:
    """What `pg_ctl restart -m fast` does to every session (FATAL 57P01), to one of ours only."""
    async with db.transaction() as tx:  # a pool connection other than the lane's
        assert await tx.fetchval("SELECT pg_terminate_backend($1)", pid) is True


async def test_a_connection_the_server_ended_while_idle_is_not_reused(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_bridge(), open_database(database_url, pool_size=2) as db:
        ended = await db.fetchval("SELECT pg_backend_pid()")
        await _terminate_backend(db, ended)
        await trio.sleep(0.3)  # the FATAL error and the end of the stream reach asyncpg
        with caplog.at_level(logging.WARNING):
            assert await db.fetchval("SELECT pg_backend_pid()") != ended
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_statement_cut_by_the_server_fails_as_unavailable_then_the_lane_recovers(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_bridge(), open_database(database_url, pool_size=2) as db:
        pid = await db.fetchval("SELECT pg_backend_pid()")
        with caplog.at_level(logging.DEBUG, logger="DB"):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_terminate_after, db, pid, 0.2)
                with pytest.raises(DbError) as caught:
                    await db.fetchval("SELECT pg_sleep(5)")  # on the lane's one connection
            assert caught.value.unavailable  # 57P01, or 08003 when the stream ended first
            assert caught.value.sqlstate in ("57P01", "08003")
            for _ in range(3):  # the dead connection was dropped, never handed out again
                assert await db.fetchval("SELECT pg_backend_pid()") != pid
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "DB"]
    assert [lvl for lvl, _ in levels if lvl >= logging.ERROR] == []
    assert [m for lvl, m in levels if lvl == logging.WARNING] == [
        f"PostgreSQL unavailable, statements fail until it is back: {caught.value}",
        levels[-1][1],
    ]
    assert levels[-1][1].startswith("PostgreSQL available again after ")


async def _terminate_after(db: Database, pid: int, delay_s: float) -> None:
    await trio.sleep(delay_s)
    await _terminate_backend(db, pid)
