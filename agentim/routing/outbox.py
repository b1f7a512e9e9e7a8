"""Outbox: a socket's bounded queue of encoded frames, written in one go by whoever flushes it.

Producers never wait (`queue_nowait` raises WouldBlock when full, STYLE §4.3). The hub's flusher
writes everything queued with one non-blocking write; what the kernel does not take goes back
to the front for the session's writer task, which exists only while there is such a backlog
(DIFFERENCES D22). An idle socket therefore holds no writer task.
"""

from __future__ import annotations

from typing import final

import trio


@final
class Outbox:
    """At most `max_frames` frames (≤ max_frames × the largest frame in bytes)."""

    __slots__ = ("_closed", "_frames", "max_frames")

    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        self._frames: list[bytes] = []
        self._closed = False

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def closed(self) -> bool:
        return self._closed

    def queue_nowait(self, frame: bytes) -> None:
        """Queue one frame; the caller has it flushed.

        Raises:
            trio.WouldBlock: the outbox is full (the caller drops or closes, by policy).
            trio.ClosedResourceError: the outbox was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError
        if len(self._frames) >= self.max_frames:
            raise trio.WouldBlock
        self._frames.append(frame)

    def force_nowait(self, frame: bytes) -> None:
        """Queue a last frame past the bound (the error that precedes a close)."""
        if not self._closed:
            self._frames.append(frame)

    def close(self) -> None:
        """No more frames; what is queued is still written."""
        self._closed = True

    def take(self) -> list[bytes]:
        """Every queued frame, in order; the outbox is empty afterwards."""
        frames, self._frames = self._frames, []
        return frames

    def put_back(self, data: bytes) -> None:
        """What a write left unsent goes first."""
        self._frames.insert(0, data)
