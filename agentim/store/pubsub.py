"""Events after commit: appended to one Redis stream; one reader per process feeds the local hub.

Every process reads the same stream, so a room's events reach every socket in one order (D15).
A reader keeps its place (the last entry id it delivered): after a lost connection or a Redis
restart it goes on from there, so an event stored while it was away is delivered late, not lost.
With Redis down, publish hands the event to the local hub directly (D16), so chat goes on
within one process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import redis.exceptions
import trio

from agentim.protocol.events import Event, decode_event, encode_event
from agentim.store.bridge import aio
from agentim.store.kv import COMMAND_TIMEOUT_S, EVENT_FIELD, EVENTS_STREAM, Kv, KvUnavailable
from agentim.store.resp import RespError, StreamEntry, StreamReader

log = logging.getLogger("PubSub")

# The retry pace while Redis is down: a refused connect costs microseconds, and the reader is
# back within this long of Redis answering again.
RESUBSCRIBE_DELAY_S: Final = 0.1
READ_BATCH: Final = 1000  # entries per read: a bounded reply however far behind the reader is
# One blocked read; below redis.asyncio's 5 s socket timeout, so both clients can use it.
READ_BLOCK_MS: Final = 2000
# A blocked read that has not returned by then has a dead peer (a silent network cut).
READ_TIMEOUT_S: Final = READ_BLOCK_MS / 1000 + COMMAND_TIMEOUT_S
START: Final = b"0-0"  # a position before every entry
# What ends a reader's connection and makes run_subscriber connect again.
_SUBSCRIPTION_LOST: Final = (
    redis.exceptions.RedisError,
    RespError,
    OSError,
    trio.BrokenResourceError,
    trio.TooSlowError,  # a connect, a command or a blocked read timed out
)


class EventSink(Protocol):
    def deliver(self, event: Event) -> None: ...


class EventBus:
    """The one way events leave an action: `await events.publish(event)` after commit."""

    def __init__(self, kv: Kv, sink: EventSink) -> None:
        self._kv = kv
        self._sink = sink
        self.captured: list[Event] | None = None  # tests: record every published event
        self.published = 0
        self.local_only = 0  # events delivered locally since the outage began (0: none)

    async def publish(self, event: Event) -> None:
        await self.publish_all([event])

    async def publish_all(self, events: list[Event]) -> None:
        """Append in order, in one pipelined round trip; with Redis down, deliver locally."""
        if not events:
            return
        payloads = [encode_event(event) for event in events]
        if self.captured is not None:
            self.captured.extend(decode_event(payload) for payload in payloads)
        self.published += len(events)
        try:
            await self._kv.append_events(payloads)
        except KvUnavailable as exc:
            if not self.local_only:  # once per outage: a busy hub publishes hundreds a second
                log.warning("Redis unavailable for event publish, delivering locally: %s", exc)
            self.local_only += len(events)
            # A pipeline cut short may have stored some: those reach this process twice.
            for event in events:
                self._sink.deliver(event)
            return
        if self.local_only:
            log.info("Redis event publish restored; %d delivered locally only", self.local_only)
            self.local_only = 0


class EventStream(Protocol):
    """The events stream as a reader sees it (resp.StreamReader, or _AioStream)."""

    async def last_id(self) -> bytes: ...
    async def has(self, entry_id: bytes) -> bool: ...
    async def read(self, after: bytes, *, count: int, block_ms: int) -> list[StreamEntry]: ...


async def run_subscriber(
    kv: Kv, sink: EventSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Read the events stream forever; after a lost connection, go on from the last entry read.

    The trio-native client is used unless the URL is a sentinel one (redis.asyncio then).
    Error policy: a lost connection is logged once per outage and retried every
    RESUBSCRIBE_DELAY_S; decode errors skip one event.
    `task_status.started()` is called once: when first reading, or after the first failure.
    """
    started = False
    position: bytes | None = None  # the last entry delivered; None: start at the newest
    lost_at: float | None = None
    while True:
        try:
            async with _open_stream(kv) as stream:
                with trio.fail_after(COMMAND_TIMEOUT_S):
                    position = await _resume(stream, position)
                if lost_at is not None:
                    log.info("Redis subscription restored after %.1f s", _since(lost_at))
                    lost_at = None
                if not started:
                    task_status.started()
                    started = True
                while True:
                    with trio.fail_after(READ_TIMEOUT_S):
                        entries = await stream.read(
                            position, count=READ_BATCH, block_ms=READ_BLOCK_MS
                        )
                    for _, payload in entries:  # delivered back to back
                        _deliver(sink, payload)
                    if entries:
                        position = entries[-1][0]
        except _SUBSCRIPTION_LOST as exc:
            if lost_at is None:
                lost_at = trio.current_time()
                log.warning(
                    "Redis subscription lost, resubscribing: %s", str(exc) or type(exc).__name__
                )
            if not started:
                task_status.started()
                started = True
            await trio.sleep(RESUBSCRIBE_DELAY_S)


async def _resume(stream: EventStream, position: bytes | None) -> bytes:
    """Where to read from: after `position` if the stream still holds it, else from its start."""
    if position is None:
        return await stream.last_id()  # a new reader: what is published from now on
    if position == START or await stream.has(position):
        return position
    # Redis restarted (or was flushed) since: what the new stream holds was all stored while
    # this reader was away. (Also when the reader fell more than EVENTS_STREAM_MAXLEN behind.)
    log.info("Redis event stream was reset; reading it from its first entry")
    return START


def _since(then: float) -> float:
    return trio.current_time() - then


@asynccontextmanager
async def _open_stream(kv: Kv) -> AsyncIterator[EventStream]:
    key = kv.key(EVENTS_STREAM)
    if kv.native is None:
        yield _AioStream(kv, key)
        return
    async with StreamReader.open(kv.native.url, key, EVENT_FIELD) as reader:
        yield reader


class _AioStream:
    """The stream over redis.asyncio (sentinel URLs): a blocked read holds a pooled connection."""

    def __init__(self, kv: Kv, key: str) -> None:
        self._client = kv.client
        self._key = key

    async def last_id(self) -> bytes:
        entries = await aio(self._client.xrevrange, self._key, "+", "-", count=1)
        return _entry_id(entries[0]) if entries else START

    async def has(self, entry_id: bytes) -> bool:
        return bool(await aio(self._client.xrange, self._key, entry_id, entry_id))

    async def read(self, after: bytes, *, count: int, block_ms: int) -> list[StreamEntry]:
        reply: Any = await aio(self._client.xread, {self._key: after}, count=count, block=block_ms)
        if not reply:
            return []
        entries: list[StreamEntry] = []
        for entry in reply[0][1]:
            fields = entry[1]
            if EVENT_FIELD in fields:
                entries.append((_entry_id(entry), fields[EVENT_FIELD]))
        return entries


def _entry_id(entry: Any) -> bytes:
    entry_id = entry[0]
    return entry_id if isinstance(entry_id, bytes) else str(entry_id).encode()


def _deliver(sink: EventSink, payload: bytes) -> None:
    try:
        event = decode_event(payload)
    except (ValueError, KeyError) as exc:
        log.error("Dropping undecodable event: %s", exc)
        return
    sink.deliver(event)
