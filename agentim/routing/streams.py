"""StreamBuffers: the in-progress replies of one gateway socket, kept until they complete.

Bounded: a stream holds at most `max_bytes` of chunk content (D20's 10 MB), a socket at most
`max_streams` open streams, and the ended-stream memory is a fixed-size LRU. Owned by one
gateway session and touched only by its reader, so no locking.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

import attrs

Chunk = dict[str, Any]
StreamKey = tuple[str, str, str]  # (agent id, room id, message id as the gateway sent it)
ENDED_REMEMBERED: Final = 256  # late chunks of an ended stream are dropped, not re-opened


@attrs.define
class Stream:
    agent_id: str
    room_id: str
    message_id: str
    started: float  # trio time of the first chunk
    last: float  # trio time of the latest chunk
    chunks: list[Chunk] = attrs.field(factory=list)
    size: int = 0  # UTF-8 bytes of chunk content so far

    @property
    def key(self) -> StreamKey:
        return (self.agent_id, self.room_id, self.message_id)

    def text(self) -> str:
        """The reply as far as it got: the text chunks joined, as the gateway would send it."""
        return "".join(c["content"] for c in self.chunks if c["type"] == "text")


class StreamBuffers:
    def __init__(self, *, max_bytes: int, max_streams: int) -> None:
        self.max_bytes = max_bytes
        self.max_streams = max_streams
        self._open: dict[StreamKey, Stream] = {}
        self._ended: OrderedDict[StreamKey, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def get(self, key: StreamKey) -> Stream | None:
        return self._open.get(key)

    def is_ended(self, key: StreamKey) -> bool:
        return key in self._ended

    def open(self, key: StreamKey, now: float) -> Stream | None:
        """Start buffering a stream; None when this socket already has `max_streams` open."""
        if len(self._open) >= self.max_streams:
            return None
        stream = Stream(*key, started=now, last=now)
        self._open[key] = stream
        return stream

    def add(self, stream: Stream, chunk: Chunk, now: float) -> bool:
        """Buffer a chunk; False (nothing added) when it would pass the size cap."""
        size = len(chunk["content"].encode())
        if stream.size + size > self.max_bytes:
            return False
        stream.chunks.append(chunk)
        stream.size += size
        stream.last = now
        return True

    def pop(self, key: StreamKey) -> Stream | None:
        """The stream is complete: stop buffering it."""
        return self._open.pop(key, None)

    def end(self, key: StreamKey) -> Stream | None:
        """Stop the stream for good: later chunks and its completion are dropped."""
        self._ended[key] = None
        self._ended.move_to_end(key)
        while len(self._ended) > ENDED_REMEMBERED:
            self._ended.popitem(last=False)
        return self._open.pop(key, None)

    def idle(self, now: float, idle_s: float) -> list[Stream]:
        """Streams with no chunk for `idle_s`: ended here, for the caller to persist."""
        stale = [s for s in self._open.values() if now - s.last >= idle_s]
        for stream in stale:
            self.end(stream.key)
        return stale

    def drain(self) -> list[Stream]:
        """Every open stream, oldest first; the buffers are empty afterwards."""
        streams = sorted(self._open.values(), key=lambda s: s.started)
        self._open.clear()
        return streams
