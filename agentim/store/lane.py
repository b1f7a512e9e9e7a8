"""A lane of pooled asyncpg connections for single statements, one bridge crossing each.

triopg crosses into asyncio three times per pooled statement (acquire, run, release) and
asyncpg's pool adds its own bookkeeping; on this kind of machine that was ~0.4 ms of a 0.7 ms
`SELECT 1`. The lane keeps a few connections borrowed from the same pool on the trio side,
so a statement is one crossing: `conn.fetchrow(...)` on an idle connection. Transactions still
go through triopg's pool (store/db.py).
"""

from __future__ import annotations

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
                result = await trio_asyncio.aio_as_trio(getattr(conn, method))(*args)
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
        return await trio_asyncio.aio_as_trio(self._pool.acquire)()

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
