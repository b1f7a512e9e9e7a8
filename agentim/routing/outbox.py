"""Outbox: a socket's bounded queue of encoded frames; its one writer takes everything at once.

Producers never wait (`send_nowait` raises WouldBlock when full, STYLE §4.3); the writer wakes
once per batch and writes every queued frame in one send (DECISIONS D22). There is exactly one
receiver, so it parks itself directly (no ParkingLot: an idle socket stays small).
"""

from __future__ import annotations

from typing import final

import trio


@final
class Outbox:
    """At most `max_frames` frames (≤ max_frames × the largest frame in bytes)."""

    __slots__ = ("_closed", "_frames", "_waiter", "max_frames")

    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        self._frames: list[bytes] = []
        self._closed = False
        self._waiter: trio.lowlevel.Task | None = None  # the writer, while it waits

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def closed(self) -> bool:
        return self._closed

    def send_nowait(self, frame: bytes) -> None:
        """Queue one frame.

        Raises:
            trio.WouldBlock: the outbox is full (the caller drops or closes, by policy).
            trio.ClosedResourceError: the outbox was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError
        if len(self._frames) >= self.max_frames:
            raise trio.WouldBlock
        self._frames.append(frame)
        self._wake()

    def queue_nowait(self, frame: bytes) -> None:
        """As `send_nowait`, without waking the writer: the caller flushes or wakes it later."""
        if self._closed:
            raise trio.ClosedResourceError
        if len(self._frames) >= self.max_frames:
            raise trio.WouldBlock
        self._frames.append(frame)

    @property
    def writer_parked(self) -> bool:
        """The writer waits for frames: it is not writing, so the socket may be written now."""
        return self._waiter is not None

    def take(self) -> list[bytes]:
        """Every queued frame, for a direct write while the writer is parked."""
        frames, self._frames = self._frames, []
        return frames

    def put_back(self, data: bytes) -> None:
        """What a direct write left unsent goes first, for the writer."""
        self._frames.insert(0, data)

    def wake(self) -> None:
        """Have the writer take what is queued (or see the close)."""
        self._wake()

    def force_nowait(self, frame: bytes) -> None:
        """Queue a last frame past the bound (the error that precedes a close)."""
        if not self._closed:
            self._frames.append(frame)
            self._wake()

    def close(self) -> None:
        """No more frames; the writer still gets what is queued."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            task, self._waiter = self._waiter, None
            trio.lowlevel.reschedule(task)

    def _abort(self, raise_cancel: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def receive_batch(self) -> list[bytes]:
        """Every queued frame, waiting for the first; [] once closed and drained.

        Only one task (the socket's writer) may call this.
        """
        if not self._frames and not self._closed:
            self._waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        else:
            # no second schedule point: the writer yields in its socket send every batch
            await trio.lowlevel.checkpoint_if_cancelled()
        frames, self._frames = self._frames, []
        return frames
