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

        A connection whose statement failed with a PostgreSQL error is reused; one interrupted
        any other way (cancelled, broken) is terminated and handed back to the pool.
        """
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._borrow()
            try:
                result = await run_here(getattr(conn, method)(*args))
            except asyncpg.PostgresError:
                reusable = True  # the statement failed; the connection is fine
                raise
            except BaseException:
                reusable = False
                raise
            else:
                reusable = True
                return result
            finally:
                if not (reusable and self._keep(conn)):
                    with trio.move_on_after(RELEASE_TIMEOUT_S, shield=True):
                        await self._release(conn, terminate=not reusable)

    async def _borrow(self) -> Any:
        if self._closed:
            raise trio.ClosedResourceError("database lane closed")
        return await trio_asyncio.aio_as_trio(self._pool.acquire)()  # once per lane connection

    def _keep(self, conn: Any) -> bool:
        """Keep the connection idle in the lane; False once the lane is closed."""
        if not self._closed:
            self._idle.append(conn)
        return not self._closed

    async def _release(self, conn: Any, *, terminate: bool) -> None:
        if terminate:
            conn.terminate()
        await trio_asyncio.aio_as_trio(self._pool.release)(conn)

    async def aclose(self) -> None:
        """Hand every idle connection back to the pool (before the pool closes)."""
        self._closed = True
        while self._idle:
            await self._release(self._idle.pop(), terminate=False)


async def run_here(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run an asyncpg coroutine in the calling trio task (the trio-asyncio loop must be open).

    asyncpg's statements only ever wait on asyncio futures (its protocol's waiters), so the task
    steps the coroutine itself and parks until the future it waits on is done, where
    `trio_asyncio.aio_as_trio` would wrap it in an asyncio Task and hand over between the two
    schedulers at each step. Cancelled, it ends the coroutine as asyncio would (CancelledError
    thrown in; asyncpg asks PostgreSQL to cancel the query) and raises trio's Cancelled.
    """
    while True:
        try:
            waiting_on = coro.send(None)
        except StopIteration as done:
            return done.value
        raise_cancel = await _wait_done(waiting_on)
        if raise_cancel is not None:
            _unwind(coro)
            raise_cancel()


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
