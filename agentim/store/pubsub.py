"""Events after commit: publish to Redis; one subscriber per process feeds the local hub.

With Redis down, publish hands the event to the local hub directly (D16), so chat goes on
within one process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, Protocol

import redis.exceptions
import trio

from agentim.protocol.events import Event, decode_event, encode_event
from agentim.store.bridge import aio
from agentim.store.kv import EVENTS_CHANNEL, Kv, KvUnavailable
from agentim.store.resp import RespError, Subscriber

log = logging.getLogger("PubSub")

RESUBSCRIBE_DELAY_S: Final = 1.0
# What ends a subscription and makes run_subscriber resubscribe.
_SUBSCRIPTION_LOST: Final = (
    redis.exceptions.RedisError,
    RespError,
    OSError,
    trio.BrokenResourceError,
    trio.TooSlowError,  # the native connect/subscribe timed out
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
            await self._kv.publish_many(EVENTS_CHANNEL, payloads)
        except KvUnavailable as exc:
            # A pipeline cut short may have published some: those reach this process twice.
            log.warning("Redis unavailable for event publish, delivering locally: %s", exc)
            for event in events:
                self._sink.deliver(event)


async def run_subscriber(
    kv: Kv, sink: EventSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Read the events channel forever; resubscribe after a Redis outage.

    The trio-native subscriber is used unless the URL is a sentinel one (redis.asyncio then).
    Error policy: Redis errors are logged and retried every second; decode errors skip one event.
    `task_status.started()` is called once: when first subscribed, or after the first failure.
    """
    started = False

    def announce() -> None:
        nonlocal started
        if not started:
            task_status.started()
            started = True

    while True:
        try:
            if kv.native is not None:
                await _run_native(kv.native.url, kv.key(EVENTS_CHANNEL), sink, announce)
            else:
                await _run_aio(kv, sink, announce)
        except _SUBSCRIPTION_LOST as exc:
            log.warning(
                "Redis subscription lost, resubscribing: %s", str(exc) or type(exc).__name__
            )
            announce()
            await trio.sleep(RESUBSCRIBE_DELAY_S)


async def _run_native(
    url: str, channel: str, sink: EventSink, announce: Callable[[], None]
) -> None:
    async with Subscriber.open(url, channel) as subscriber:
        announce()
        while True:
            for payload in await subscriber.receive_batch():  # delivered back to back
                _deliver(sink, payload)


async def _run_aio(kv: Kv, sink: EventSink, announce: Callable[[], None]) -> None:
    pubsub = kv.client.pubsub()
    try:
        await aio(pubsub.subscribe, kv.key(EVENTS_CHANNEL))
        announce()
        while True:
            message = await aio(pubsub.get_message, ignore_subscribe_messages=True, timeout=None)
            if message is not None and message.get("type") == "message":
                _deliver(sink, message["data"])
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
