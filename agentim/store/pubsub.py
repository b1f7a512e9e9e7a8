"""Events after commit: published through Redis; one subscriber per process feeds the local hub.

Each event is stored in one Redis stream and pushed on a channel in one atomic step, so every
process gets a room's events in one order (D15). A subscriber keeps its place (the id of the
last entry it delivered): after a lost subscription or a Redis restart it subscribes again and
first delivers what the stream stored meanwhile, so an event is delivered late, never lost.
With Redis down, publish hands the event to the local hub directly (D16), so chat goes on
within one process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final, Protocol

import redis.exceptions
import trio

from agentim.protocol.events import Event, decode_event, encode_event
from agentim.store.bridge import aio
from agentim.store.kv import COMMAND_TIMEOUT_S, Kv, KvUnavailable
from agentim.store.resp import RespError, Subscriber

log = logging.getLogger("PubSub")

# The retry pace while Redis is down: a refused connect costs microseconds, and the subscriber
# is back within this long of Redis answering again.
RESUBSCRIBE_DELAY_S: Final = 0.1
CATCH_UP_BATCH: Final = 1000  # stream entries per read while catching up
START: Final = b"0-0"  # a stream position before every entry
# What ends a subscription and makes run_subscriber subscribe again.
_SUBSCRIPTION_LOST: Final = (
    redis.exceptions.RedisError,
    RespError,
    KvUnavailable,
    OSError,
    trio.BrokenResourceError,
    trio.TooSlowError,  # the connect, subscribe or catch-up timed out
)

Receive = Callable[[], Awaitable[list[bytes]]]


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
        """Publish in order, in one pipelined round trip; with Redis down, deliver locally."""
        if not events:
            return
        payloads = [encode_event(event) for event in events]
        if self.captured is not None:
            self.captured.extend(decode_event(payload) for payload in payloads)
        self.published += len(events)
        try:
            await self._kv.publish_events(payloads)
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


class _Place:
    """Where a subscriber stands in the events stream."""

    def __init__(self) -> None:
        self.position: bytes | None = None  # the last entry delivered; None: not started
        # After a catch-up: pushes up to this id were delivered by it (compared until passed).
        self.skip: tuple[int, int] | None = None


async def run_subscriber(
    kv: Kv, sink: EventSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Deliver the events channel forever; after a lost subscription, catch up from the stream.

    The trio-native subscriber is used unless the URL is a sentinel one (redis.asyncio then).
    Error policy: a lost subscription is logged once per outage and retried every
    RESUBSCRIBE_DELAY_S; decode errors skip one event.
    `task_status.started()` is called once: when first subscribed, or after the first failure.
    """
    started = False
    place = _Place()
    lost_at: float | None = None
    while True:
        try:
            if place.position is None:  # read before subscribing: later entries are caught up
                place.position = await kv.stream_last_id()
            async with _subscribe(kv) as receive:
                with trio.fail_after(COMMAND_TIMEOUT_S):
                    await _catch_up(kv, sink, place)
                if lost_at is not None:
                    log.info("Redis subscription restored after %.1f s", _since(lost_at))
                    lost_at = None
                if not started:
                    task_status.started()
                    started = True
                while True:
                    _deliver_pushes(sink, place, await receive())
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


async def _catch_up(kv: Kv, sink: EventSink, place: _Place) -> None:
    """Deliver what the stream stored after `place.position` (subscribed already, so nothing
    falls between the two); pushes of those entries are skipped afterwards."""
    position = place.position or START
    if position != START and not await kv.stream_has(position):
        # Redis restarted (or was flushed) since: what the new stream holds was all stored
        # while this subscriber was away. (Also when it fell EVENTS_STREAM_MAXLEN behind.)
        log.info("Redis event stream was reset; reading it from its first entry")
        position = place.position = START
    while True:
        entries = await kv.stream_after(position, CATCH_UP_BATCH)
        for entry_id, payload in entries:
            _deliver(sink, payload)
            position = place.position = entry_id  # a failure below: nothing delivered twice
        if len(entries) < CATCH_UP_BATCH:
            break
    place.skip = _id_key(position)


def _deliver_pushes(sink: EventSink, place: _Place, messages: list[bytes]) -> None:
    """Pushes are `<entry id>\\n<payload>`, in stream order."""
    for message in messages:
        entry_id, _, payload = message.partition(b"\n")
        if place.skip is not None:
            if _id_key(entry_id) <= place.skip:
                continue  # delivered by the catch-up
            place.skip = None
        _deliver(sink, payload)
        place.position = entry_id


def _id_key(entry_id: bytes) -> tuple[int, int]:
    """A stream entry id (`<ms>-<seq>`) as a comparable pair."""
    ms, _, seq = entry_id.partition(b"-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return (0, 0)


def _since(then: float) -> float:
    return trio.current_time() - then


@asynccontextmanager
async def _subscribe(kv: Kv) -> AsyncIterator[Receive]:
    """Subscribed (confirmed by the server) on exit of `__aenter__`; yields a batch receiver."""
    if kv.native is not None:
        async with Subscriber.open(kv.native.url, kv.events_channel) as subscriber:
            yield subscriber.receive_batch
        return
    pubsub = kv.client.pubsub()
    try:
        await aio(pubsub.subscribe, kv.events_channel)
        with trio.fail_after(COMMAND_TIMEOUT_S):  # confirmed: later pushes reach us
            while True:
                reply = await aio(pubsub.get_message, timeout=COMMAND_TIMEOUT_S)
                if reply is not None and reply.get("type") == "subscribe":
                    break

        async def receive() -> list[bytes]:
            while True:
                message = await aio(
                    pubsub.get_message, ignore_subscribe_messages=True, timeout=None
                )
                if message is not None and message.get("type") == "message":
                    return [message["data"]]

        yield receive
    finally:
        with trio.move_on_after(1, shield=True):
            await aio(pubsub.aclose)


def _deliver(sink: EventSink, payload: bytes) -> None:
    try:
        event = decode_event(payload)
    except (ValueError, KeyError) as exc:
        log.error("Dropping undecodable event: %s", exc)
        return
    sink.deliver(event)
