"""The one trio-asyncio loop that triopg and redis.asyncio run on; only store/ uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio_asyncio

T = TypeVar("T")


@asynccontextmanager
async def open_bridge() -> AsyncIterator[None]:
    """Open the asyncio loop for the store; everything using it must close first.

    A loop already open in this context (a test harness's) is reused, so objects built on it
    can be used from every task of that context.
    """
    if trio_asyncio.current_loop.get(None) is not None:
        yield
        return
    async with trio_asyncio.open_loop():
        yield


async def aio(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Await an asyncio coroutine function from trio."""
    return await trio_asyncio.aio_as_trio(fn)(*args, **kwargs)  # type: ignore[no-any-return]
