"""Composition root: `serve(settings)` runs one hub process (STYLE §4.1)."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Final

import trio

from agentim import embedded, logs
from agentim.actions.agents import mark_process_agents_offline, reset_stale_agents
from agentim.actions.permissions import expire_permission
from agentim.actions.push import run_push_sender
from agentim.actions.reclaim import run_heartbeat, stop_beating
from agentim.actions.routing import handle_hop
from agentim.actions.seed import seed_admin
from agentim.actions.service_agents import install_controls as install_service_agent_controls
from agentim.actions.shutdown import GOING_AWAY, finish_replies
from agentim.app import create_app
from agentim.auth.passwords import PasswordHasher
from agentim.auth.tokens import TokenService
from agentim.devsecrets import ensure_dev_secrets, ensure_vapid_keys
from agentim.errors import ErrorCode
from agentim.http.health import rss_bytes
from agentim.jobs import (
    run_audit_cleanup,
    run_gateway_cleanup,
    run_orphan_cleanup,
    run_reclaimer,
    run_token_cleanup,
)
from agentim.metrics import Metrics
from agentim.routing.hub import Hub
from agentim.routing.permissions import PermissionBroker
from agentim.routing.ratelimit import RateLimiter
from agentim.services import Services
from agentim.settings import DEFAULT_JWT_SECRET, Settings, problems, storage_problem
from agentim.store.blobs import BlobStore, LocalBlobStore
from agentim.store.bridge import open_bridge
from agentim.store.db import Database, DbError, StartupError, open_database
from agentim.store.kv import Kv, open_redis
from agentim.store.pubsub import EventBus, run_subscriber
from agentim.store.s3_blobs import S3BlobStore, S3Config, make_client
from agentim.store.schema import apply_migrations
from agentim.ws.endpoints import handle_upgrade
from agentim.ws.gateway_session import install_controls as install_gateway_controls
from agentim.ws.listener import Listener

log = logging.getLogger("Server")

ANY_ADDRESS: Final = ("0.0.0.0", "::", "")  # HOST values that bind every interface

# Shutdown's first step: a gateway's close takes at most ws/session's CLOSE_GRACE_S plus
# CLEANUP_GRACE_S (2 s + 2 s) and the completions' round trip through Redis a few ms; the whole
# exit stays within D14's 10 s.
FINISH_REPLIES_S: Final = 4.5
LIVE_SETTINGS_LOAD_S: Final = 10.0  # the first read of the settings table at start-up


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


async def check_upload_dir(path: Path) -> None:
    if not await trio.to_thread.run_sync(_writable_dir, path):
        shown = await trio.to_thread.run_sync(path.resolve)
        raise StartupError(f"Fatal: Upload directory is not writable: {shown}")


async def open_blob_store(settings: Settings) -> BlobStore:
    """The store STORAGE_PROVIDER names, checked writable before anything is served."""
    if settings.storage_provider != "s3":
        await check_upload_dir(settings.upload_dir)
        return LocalBlobStore(settings.upload_dir)
    config = S3Config(
        bucket=settings.s3_bucket,
        region=settings.s3_region,
        endpoint=settings.s3_endpoint,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
        force_path_style=settings.s3_force_path_style,
    )
    client = await trio.to_thread.run_sync(make_client, config)  # boto3 reads its data files
    store = S3BlobStore(config, client)
    if not await store.writable():
        raise StartupError(f"Fatal: S3 bucket is not reachable: {settings.s3_bucket}")
    return store


def validate(settings: Settings) -> None:
    if issue := storage_problem(settings):
        raise StartupError(f"Error: {issue}")
    found = problems(settings)
    if found and settings.is_production:
        raise StartupError("\n".join(f"Error: {text}" for text in found))
    for text in found:
        log.warning("Configuration: %s", text)
    if settings.jwt_secret == DEFAULT_JWT_SECRET:
        log.warning("JWT_SECRET is the default value; set a real secret")


async def watch_signals(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("%s received, shutting down gracefully...", signal.Signals(signum).name)
            shutdown.set()


def build_services(
    settings: Settings, db: Database, kv: Kv, hub: Hub, blobs: BlobStore
) -> Services:
    metrics = Metrics()
    services = Services(
        settings=settings,
        blobs=blobs,
        db=db,
        kv=kv,
        events=EventBus(kv, hub),
        hub=hub,
        passwords=PasswordHasher(settings.bcrypt_rounds),
        tokens=TokenService(
            settings.jwt_secret or DEFAULT_JWT_SECRET,
            settings.jwt_secret_previous,
            settings.access_ttl_s,
            settings.refresh_ttl_s,
        ),
        limiter=RateLimiter(kv, enabled=not settings.is_test),
        metrics=metrics,
        embedded_db=settings.database_url is None,
        embedded_redis=settings.redis_url is None,
    )
    _bind_gauges(metrics, hub, services.started_at)
    return services


def _bind_gauges(metrics: Metrics, hub: Hub, started_at: float) -> None:
    """Gauges read live state when scraped; nothing scans the database."""
    gauges = (
        (
            "agentim_ws_client_connections",
            "Client sockets on this process",
            lambda: hub.count("client"),
        ),
        (
            "agentim_ws_gateway_connections",
            "Gateway sockets on this process",
            lambda: hub.count("gateway"),
        ),
        (
            "agentim_online_users",
            "Users with a client socket on this process",
            lambda: len({s.user_id for s in hub.sessions.values() if s.kind == "client"}),
        ),
        (
            "agentim_connected_agents",
            "Agents bound to a gateway on this process",
            lambda: len(hub.agents),
        ),
        (
            "agentim_active_rooms",
            "Rooms with a joined socket on this process",
            lambda: len(hub.rooms),
        ),
        ("process_uptime_seconds", "Seconds since start", lambda: time.monotonic() - started_at),
        ("process_rss_bytes", "Resident memory in bytes", rss_bytes),
    )
    for name, help_text, read in gauges:
        metrics.gauge(name, help_text, partial(_as_float, read))


def _as_float(read: Callable[[], float]) -> float:
    return float(read())


async def serve(  # noqa: ASYNC128 (task_status is handed to _run_hub, which calls started)
    settings: Settings,
    *,
    shutdown: trio.Event | None = None,
    handle_signals: bool = False,
    redis_prefix: str | None = None,
    ready: Callable[[Services], None] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one hub process until `shutdown` (or SIGTERM/SIGINT); report the bound URLs."""
    shutdown = trio.Event() if shutdown is None else shutdown
    validate(settings)
    blobs = await open_blob_store(settings)
    settings = await ensure_dev_secrets(settings)
    settings = await ensure_vapid_keys(settings)
    async with trio.open_nursery() as backing:
        if handle_signals:
            backing.start_soon(watch_signals, shutdown)
        db_url = settings.database_url or await backing.start(
            embedded.run_postgres, settings.data_dir
        )
        redis_url = settings.redis_url or await backing.start(embedded.run_redis, settings.data_dir)
        async with (
            open_bridge(),
            open_database(db_url, pool_size=settings.db_pool_size) as db,
            open_redis(
                redis_url,
                prefix=settings.redis_key_prefix if redis_prefix is None else redis_prefix,
            ) as kv,
        ):
            if settings.run_migrations:
                await apply_migrations(db)
            await _run_hub(settings, db, kv, blobs, shutdown, ready, task_status)
        backing.cancel_scope.cancel()  # last: the embedded servers and the signal watcher


async def _run_hub(
    settings: Settings,
    db: Database,
    kv: Kv,
    blobs: BlobStore,
    shutdown: trio.Event,
    ready: Callable[[Services], None] | None,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    hub = Hub()
    services = build_services(settings, db, kv, hub, blobs)
    if ready is not None:
        ready(services)
    await seed_admin(services)
    install_gateway_controls(hub)
    await _load_live_settings(services)
    install_service_agent_controls(services)
    await reset_stale_agents(services)  # D14: agents a crashed process left online
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        heartbeat = await nursery.start(run_heartbeat, services)  # registered before serving
        await nursery.start(run_subscriber, kv, hub)
        await nursery.start(services.live.run)  # runtime settings (A1): reload on change
        await nursery.start(services.conversations.run, partial(handle_hop, services))
        await nursery.start(partial(  # service-agent replies (head-gap A3)
            services.service_runs.run, allow_private=settings.router_allow_private_networks
        ))  # fmt: skip
        await nursery.start(PermissionBroker(hub, partial(expire_permission, services)).run)
        await nursery.start(run_orphan_cleanup, services)
        await nursery.start(run_token_cleanup, services)
        await nursery.start(run_reclaimer, services)
        await nursery.start(run_gateway_cleanup, services)
        await nursery.start(run_audit_cleanup, services)
        await nursery.start(run_push_sender, services)
        listener = Listener(
            create_app(services),
            partial(handle_upgrade, services),
            settings.host,
            settings.port,
            on_shutdown=partial(_close_sessions, services),
        )
        urls = await nursery.start(listener.serve, shutdown)
        _announce(settings, urls)
        task_status.started(urls)
        await listener.finished.wait()
        await mark_process_agents_offline(services)  # D14; bounded inside
        heartbeat.cancel()
        await stop_beating(services)  # a survivor reclaims the rest (presence) at once
        nursery.cancel_scope.cancel()  # HTTP drained: stop subscriber, conversations and jobs
    log.info("HTTP server closed")


async def _load_live_settings(services: Services) -> None:
    """The administrator's saved settings over the environment's, before anything is served;
    an unreadable table leaves the environment's values (logged)."""
    services.live.install(services.hub)
    services.live.watch(_apply_log_level)
    try:
        with trio.fail_after(LIVE_SETTINGS_LOAD_S):
            await services.live.reload()
    except (DbError, trio.TooSlowError) as exc:
        log.warning("Runtime settings not loaded, using the environment's: %s", exc)


def _apply_log_level(before: Settings, after: Settings) -> None:
    if after.log_level != before.log_level:
        logs.set_level(after.log_level)
        log.info("Log level changed to %s", after.log_level)


async def _close_sessions(services: Services) -> None:
    """D14: gateways first, so the replies they were streaming end for the clients (bounded);
    then every client gets SERVER_SHUTDOWN and all sockets close with 1001."""
    with trio.move_on_after(FINISH_REPLIES_S) as waited:
        await finish_replies(services)
    if waited.cancelled_caught:
        log.warning("Shutdown: replies in flight not all delivered within %.1f s",
                    FINISH_REPLIES_S)  # fmt: skip
    error = {"code": ErrorCode.SERVER_SHUTDOWN.value, "message": "Server is shutting down"}
    services.hub.close_all(*GOING_AWAY, client_error=error)


def _announce(settings: Settings, urls: list[str]) -> None:
    port = urls[0].rsplit(":", 1)[1] if urls else str(settings.port)
    host = "localhost" if settings.host in ANY_ADDRESS else settings.host  # a URL one can open
    line = f"AgentIM server running at http://{host}:{port}"
    if not logs.is_pretty():  # readable log lines already show it once
        print(line, flush=True)
    log.info(line)
