"""A lane of pooled asyncpg connections for single statements, stepped from the trio task.

triopg crosses into asyncio three times per pooled statement (acquire, run, release) and
asyncpg's pool adds its own bookkeeping; on this kind of machine that was ~0.4 ms of a 0.7 ms
`SELECT 1`. The lane keeps a few connections borrowed from the same pool on the trio side, and
runs a statement's coroutine (`conn.fetchrow(...)`) in the calling trio task (`run_here`): the
connection and its protocol stay on the trio-asyncio loop, but no asyncio Task is made and no
hand-over between the loops happens, ~0.25 ms of CPU less per statement. Transactions still go
through triopg's pool (store/db.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Final

import asyncpg
import trio
import trio_asyncio

RELEASE_TIMEOUT_S: Final = 5.0


class ConnectionLane:
    """At most `size` connections borrowed from `pool` (an asyncpg Pool) and kept idle here."""

    def __init__(self, pool: Any, size: int) -> None:
        self._pool = pool
        self._slots = trio.Semaphore(size)
        self._idle: list[Any] = []
        self._closed = False

    async def call(self, method: str, *args: Any) -> Any:
        """Run `conn.<method>(*args)` on a lane connection.

        A connection whose statement failed with an ordinary PostgreSQL error is reused. One
        that the server ended (a FATAL error such as `pg_ctl restart -m fast`'s admin shutdown,
        a connection-class SQLSTATE) or that was interrupted any other way (cancelled, broken,
        a protocol error) is discarded: terminated if still ours, and handed back to the pool.

        A connection the server ended while it sat idle can look alive for a moment (asyncpg
        has read the FATAL error but not yet the end of the stream) and then refuses to start
        a statement; the statement never reached the server, so it runs on another connection.
        """
        async with self._slots:
            attempts = self._pool.get_max_size() + 1  # every pooled connection may be stale
            for attempt in range(1, attempts + 1):
                conn = await self._take()
                try:
                    return await self._run(conn, method, args)
                except NotStarted as refused:
                    if attempt == attempts:
                        raise refused.reason from None
            raise AssertionError("unreachable")

    async def _run(self, conn: Any, method: str, args: tuple[Any, ...]) -> Any:
        try:
            result = await run_here(getattr(conn, method)(*args))
        except asyncpg.PostgresError as exc:
            healthy = not ends_session(exc)
            raise
        except BaseException:
            healthy = False
            raise
        else:
            healthy = True
            return result
        finally:
            if not (healthy and self._keep(conn)):
                with trio.move_on_after(RELEASE_TIMEOUT_S, shield=True):
                    await self._release(conn, terminate=not healthy)

    async def _take(self) -> Any:
        """An idle connection that is still alive, else a new one from the pool. A connection
        lost while idle (the server restarted) was already taken back by the pool: dropped."""
        while self._idle:
            conn = self._idle.pop()
            if _alive(conn):
                return conn
            await self._release(conn, terminate=True)
        return await self._borrow()

    async def _borrow(self) -> Any:
        if self._closed:
            raise trio.ClosedResourceError("database lane closed")
        return await trio_asyncio.aio_as_trio(self._pool.acquire)()  # once per lane connection

    def _keep(self, conn: Any) -> bool:
        """Keep the connection idle in the lane; False once the lane is closed or the
        connection is gone."""
        if not self._closed and _alive(conn):
            self._idle.append(conn)
            return True
        return False

    async def _release(self, conn: Any, *, terminate: bool) -> None:
        """Hand the connection back to the pool, unless asyncpg already did (it does when the
        connection is lost); after that the proxy refuses every call, terminate() included."""
        if not _attached(conn):
            return
        if terminate:
            conn.terminate()
        await trio_asyncio.aio_as_trio(self._pool.release)(conn)

    async def aclose(self) -> None:
        """Hand every idle connection back to the pool (before the pool closes)."""
        self._closed = True
        while self._idle:
            await self._release(self._idle.pop(), terminate=False)


def ends_session(exc: asyncpg.PostgresError) -> bool:
    """True when the error means the server ended (or never opened) the session: FATAL and PANIC
    errors, connection exceptions (class 08) and operator intervention (57P01 admin shutdown,
    57P02 crash shutdown, 57P03 cannot connect now). Any other error leaves it usable."""
    state = getattr(exc, "sqlstate", None) or ""
    severity = getattr(exc, "severity", None) or ""
    return severity in ("FATAL", "PANIC") or state.startswith(("08", "57P"))


def _attached(conn: Any) -> bool:
    """The pool proxy still holds its connection. asyncpg detaches it when the connection is
    lost (and returns it to the pool itself); PoolConnectionProxy has no public test for it."""
    return conn._con is not None


def _alive(conn: Any) -> bool:
    return _attached(conn) and not conn.is_closed()


class NotStarted(Exception):
    """The connection's protocol refused to start the statement (asyncpg's InternalClientError
    on the coroutine's first step, before anything is written): nothing reached the server."""

    def __init__(self, reason: asyncpg.InternalClientError) -> None:
        super().__init__(str(reason))
        self.reason = reason


async def run_here(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run an asyncpg coroutine in the calling trio task (the trio-asyncio loop must be open).

    asyncpg's statements only ever wait on asyncio futures (its protocol's waiters), so the task
    steps the coroutine itself and parks until the future it waits on is done, where
    `trio_asyncio.aio_as_trio` would wrap it in an asyncio Task and hand over between the two
    schedulers at each step. Cancelled, it ends the coroutine as asyncio would (CancelledError
    thrown in; asyncpg asks PostgreSQL to cancel the query) and raises trio's Cancelled.

    Raises:
        NotStarted: the protocol was not idle (see the class).
    """
    try:
        waiting_on = coro.send(None)
    except StopIteration as done:
        return done.value
    except asyncpg.InternalClientError as exc:
        raise NotStarted(exc) from exc
    while True:
        raise_cancel = await _wait_done(waiting_on)
        if raise_cancel is not None:
            _unwind(coro)
            raise_cancel()
        try:
            waiting_on = coro.send(None)
        except StopIteration as done:
            return done.value


async def _wait_done(future: asyncio.Future[Any] | None) -> trio.lowlevel.RaiseCancelT | None:
    """Park until `future` is done (None: a bare yield, one turn of the loop).

    As in `trio_asyncio.run_aio_future`, a cancellation cancels the future and keeps waiting for
    it to be done, so the wake-up never arrives late; trio's function to raise the cancellation
    comes back when the future ended cancelled (None when it completed anyway).
    """
    if future is None:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
    task = trio.lowlevel.current_task()
    future._asyncio_future_blocking = False
    future.add_done_callback(lambda _: trio.lowlevel.reschedule(task))
    raise_cancel: trio.lowlevel.RaiseCancelT | None = None

    def abort(raise_cancel_arg: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        nonlocal raise_cancel
        raise_cancel = raise_cancel_arg
        future.cancel()
        return trio.lowlevel.Abort.FAILED

    await trio.lowlevel.wait_task_rescheduled(abort)
    return raise_cancel if future.cancelled() else None


def _unwind(coro: Coroutine[Any, Any, Any]) -> None:
    """End a coroutine that will not be resumed as asyncio would: CancelledError thrown in.
    Whatever it ends with, the caller raises trio's Cancelled."""
    try:
        coro.throw(asyncio.CancelledError())
    except BaseException:  # noqa: ASYNC103 (the coroutine's own end; trio's Cancelled follows)
        return  # noqa: ASYNC104
    coro.close()  # it caught the cancellation and waits again: it is not resumed; close it
