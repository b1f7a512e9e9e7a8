"""Flusher: one task writes every socket's queued frames, right after the events that queued them.

A fan-out queues one frame on each recipient; waking every recipient's writer task would cost a
task switch and a `send` per socket per event. Instead each session registers once with the
flusher, which runs when the delivering task yields (after a whole batch of events, so frames
coalesce) and writes each socket's frames with one non-blocking `write`. Only what the kernel
does not take at once goes to the session's own writer task (DIFFERENCES D22, STYLE §4.3).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

import trio

log = logging.getLogger("Connections")


class Flushable(Protocol):
    def flush(self) -> None: ...


class Flusher:
    __slots__ = ("_queued", "_waiter", "running")

    def __init__(self) -> None:
        self._queued: list[Flushable] = []
        self._waiter: trio.lowlevel.Task | None = None
        self.running = False

    def add(self, session: Flushable) -> bool:
        """Flush `session` soon; False when the flusher is not running (the caller wakes its
        writer itself)."""
        if not self.running:
            return False
        self._queued.append(session)
        if self._waiter is not None:
            task, self._waiter = self._waiter, None
            trio.lowlevel.reschedule(task)
        return True

    async def run(self) -> None:
        """Flush until cancelled; what is still queued then is flushed on the way out.

        Error policy: `flush` is not expected to raise; if one does, it is logged and the other
        sockets are still flushed (this task serves every socket of the process).
        """
        self.running = True
        try:
            while True:
                await self._wait()
                queued, self._queued = self._queued, []
                _flush_all(queued)
        finally:
            self.running = False
            queued, self._queued = self._queued, []
            _flush_all(queued)

    async def _wait(self) -> None:
        if self._queued:
            await trio.lowlevel.checkpoint()
            return
        self._waiter = trio.lowlevel.current_task()

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


def _flush_all(sessions: Iterable[Flushable]) -> None:
    for session in sessions:
        try:
            session.flush()
        except Exception:
            log.exception("Flushing a socket failed")
