"""Events after commit: publish to Redis; one subscriber per process feeds the local hub.

With Redis down, publish hands the event to the local hub directly (D16), so chat goes on
within one process.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Protocol

import redis.exceptions
import trio

from agentim.protocol.events import Event, decode_event, encode_event
from agentim.store.bridge import aio
from agentim.store.kv import EVENTS_CHANNEL, Kv, KvUnavailable

log = logging.getLogger("PubSub")

RESUBSCRIBE_DELAY_S: Final = 1.0


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
        if self.captured is not None:
            self.captured.append(decode_event(encode_event(event)))
        self.published += 1
        try:
            await self._kv.publish(EVENTS_CHANNEL, encode_event(event))
        except KvUnavailable as exc:
            log.warning("Redis unavailable for event publish, delivering locally: %s", exc)
            self._sink.deliver(event)

    async def publish_all(self, events: list[Event]) -> None:
        for event in events:
            await self.publish(event)


async def run_subscriber(
    kv: Kv, sink: EventSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Read the events channel forever; resubscribe after a Redis outage.

    Error policy: Redis errors are logged and retried every second; decode errors skip one event.
    """
    started = False
    while True:
        try:
            pubsub = kv.client.pubsub()
            await aio(pubsub.subscribe, kv.key(EVENTS_CHANNEL))
            if not started:
                task_status.started()
                started = True
            await _pump(pubsub, sink)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("Redis subscription lost, resubscribing: %s", exc)
            if not started:
                task_status.started()
                started = True
            await trio.sleep(RESUBSCRIBE_DELAY_S)


async def _pump(pubsub: Any, sink: EventSink) -> None:
    try:
        while True:
            message = await aio(pubsub.get_message, ignore_subscribe_messages=True, timeout=None)
            if message is None or message.get("type") != "message":
                continue
            try:
                event = decode_event(message["data"])
            except (ValueError, KeyError) as exc:
                log.error("Dropping undecodable event: %s", exc)
                continue
            sink.deliver(event)
    finally:
        with trio.move_on_after(1, shield=True):
            await aio(pubsub.aclose)
