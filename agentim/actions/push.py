"""Web Push (head-gap A15): subscriptions, and notifications to room members with no open
client socket on any hub process.

The message path only calls `notify_message`, which never waits (routing/webpush.PushQueue). The
sender task owns the rest: who is offline (Redis presence, else this process alone, D16),
encryption, bounded concurrent requests, and removal of subscriptions the push service says
are gone (404/410).

Error policy of `run_push_sender`: a failed job or request is logged and the next one runs;
only cancellation ends it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import httpx
import trio

from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.routing.webpush import (
    EXPIRED_STATUSES,
    PushFailed,
    PushJob,
    Subscription,
    VapidSigner,
    encrypt_payload,
    new_push_client,
    notification,
    post_push,
)
from agentim.services import Services
from agentim.store import push as store
from agentim.store.db import DbError
from agentim.store.kv import KvUnavailable, online_users

log = logging.getLogger("WebPush")

RETRY_DELAY_S: Final = 0.5  # the reference retries a failed push once, after 500 ms
DELIVERY_BUFFER: Final = 64  # subscriptions waiting for a free sender; the job reader waits
# A user's browsers and devices; beyond this the oldest subscriptions go, so one account cannot
# make every message fan out to thousands of endpoints.
MAX_SUBSCRIPTIONS_PER_USER: Final = 20


def push_enabled(services: Services) -> bool:
    settings = services.settings
    return bool(settings.vapid_public_key and settings.vapid_private_key)


async def subscribe(
    services: Services, *, user_id: str, endpoint: str, p256dh: str, auth: str
) -> None:
    """Keep the browser's subscription for the user (an endpoint already kept moves to them);
    the user keeps their newest MAX_SUBSCRIPTIONS_PER_USER subscriptions."""
    async with services.db.transaction() as tx:
        await store.upsert_subscription(
            tx, sub_id=new_id(), user_id=user_id, endpoint=endpoint, p256dh=p256dh,
            auth=auth, now=iso_now(),
        )  # fmt: skip
        await store.trim_user_subscriptions(tx, user_id, keep=MAX_SUBSCRIPTIONS_PER_USER)


async def unsubscribe(services: Services, *, user_id: str, endpoint: str) -> None:
    """Forget the caller's own subscription of that endpoint (another user's stays)."""
    await store.delete_user_subscription(services.db, endpoint=endpoint, user_id=user_id)


def notify_message(
    services: Services, message: Mapping[str, Any], *, sender_id: str | None
) -> None:
    """Queue notifications for a stored, broadcast message (its sender's name as the title);
    returns at once, so it never slows the message path. `sender_id` is not notified."""
    if push_enabled(services):
        room_id = message["roomId"]
        payload = notification(message["senderName"], message["content"], room_id, message["id"])
        services.push.offer(PushJob(room_id, sender_id, payload))


async def run_push_sender(
    services: Services, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Read queued jobs and send their notifications, `push_concurrency` requests at a time."""
    settings = services.settings
    if not push_enabled(services):
        task_status.started()
        return
    signer = VapidSigner(settings.vapid_private_key or "", settings.vapid_subject)
    jobs = services.push.open(settings.push_queue_size)
    deliveries_in, deliveries_out = trio.open_memory_channel[tuple[Subscription, PushJob]](
        DELIVERY_BUFFER
    )
    try:
        async with new_push_client() as http, trio.open_nursery() as nursery:
            for _ in range(settings.push_concurrency):
                nursery.start_soon(_deliver_loop, services, http, signer, deliveries_out.clone())
            deliveries_out.close()
            task_status.started()
            async with deliveries_in:
                async for job in jobs:
                    try:
                        subs = await _expand(services, job)
                    except Exception:  # the policy above: log, go on with the next job
                        log.exception("Push for room %s failed", job.room_id)
                        continue
                    for sub in subs:
                        await deliveries_in.send((sub, job))
    finally:
        services.push.close()


async def _expand(services: Services, job: PushJob) -> list[Subscription]:
    """The subscriptions of the job's room members who have no client socket anywhere."""
    try:
        rows = await store.room_member_subscriptions(
            services.db, job.room_id, except_user=job.sender_id
        )
    except DbError as exc:
        log.warning("Push for room %s skipped, database error: %s", job.room_id, exc)
        return []
    subs = [Subscription(r["id"], r["user_id"], r["endpoint"], r["p256dh"], r["auth"])
            for r in rows]  # fmt: skip
    users = sorted({s.user_id for s in subs})
    local = {u for u in users if services.hub.user_sessions(u, "client")}
    try:
        online = local | await online_users(services.kv, [u for u in users if u not in local])
    except KvUnavailable as exc:  # D16: this process decides alone
        log.warning("Redis unavailable for presence, pushing to users offline here: %s", exc)
        online = local
    return [s for s in subs if s.user_id not in online]


async def _deliver_loop(
    services: Services, http: httpx.AsyncClient, signer: VapidSigner,
    deliveries: trio.MemoryReceiveChannel[tuple[Subscription, PushJob]],
) -> None:  # fmt: skip
    async with deliveries:
        async for sub, job in deliveries:
            try:
                await _deliver(services, http, signer, sub, job)
            except Exception:  # the policy above: log, go on with the next one
                log.exception("Push to user %s failed", sub.user_id)


async def _deliver(
    services: Services, http: httpx.AsyncClient, signer: VapidSigner, sub: Subscription,
    job: PushJob,
) -> None:  # fmt: skip
    """One notification to one subscription: encrypted in a worker thread (CPU, a few ms),
    sent with one retry after RETRY_DELAY_S, the row removed when the push service says the
    subscription is gone."""
    settings = services.settings
    try:
        body = await trio.to_thread.run_sync(encrypt_payload, sub, job.payload)
    except ValueError as exc:  # keys stored before they were checked at subscribe time
        log.warning("Push to user %s skipped, unusable subscription keys: %s", sub.user_id, exc)
        return
    for attempt in (1, 2):
        try:
            await post_push(http, sub, body, signer.headers(sub.endpoint),
                            timeout_s=settings.push_timeout_s,
                            allow_private=settings.push_allow_private_networks)  # fmt: skip
            return
        except PushFailed as exc:
            if exc.status in EXPIRED_STATUSES:
                await store.delete_subscription(services.db, sub.sub_id)
                log.info("Removed expired push subscription of user %s", sub.user_id)
                return
            if attempt == 2:
                log.warning("Failed to send push to user %s after retry: %s", sub.user_id, exc)
                return
        await trio.sleep(RETRY_DELAY_S)
