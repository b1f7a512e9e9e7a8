"""Presence across processes (realtime.md §7.1, DIFFERENCES D15): online on a user's first client
socket anywhere, offline when the last one has been gone for the grace period.

Redis holds which processes have the user; with Redis down each process decides alone (D16).
"""

from __future__ import annotations

import logging
from typing import Final

from agentim.actions.agents import liveness_ms
from agentim.protocol.events import Target, frame_event
from agentim.services import Services
from agentim.store.kv import KvUnavailable, PresenceKv
from agentim.store.processes import ProcessKv

log = logging.getLogger("Presence")

OFFLINE_GRACE_S: Final = 2.0  # realtime.md §1.4: a quick reconnect announces nothing


async def user_online(services: Services, user_id: str, username: str) -> None:
    """This process got the user's first client socket: announce if no process had one."""
    process_id = services.hub.process_id
    try:
        await ProcessKv(services.kv).keep_alive(process_id, liveness_ms(services))
        others = await PresenceKv(services.kv).join(user_id, username, process_id)
    except KvUnavailable as exc:
        log.warning("Redis unavailable for presence, deciding locally: %s", exc)
        others = 0
    if others == 0:
        await announce(services, user_id, username, online=True)


async def user_offline(services: Services, user_id: str, username: str) -> None:
    """The grace period after the user's last local client socket is over."""
    if services.hub.user_sessions(user_id, "client"):
        return  # back in time
    try:
        remaining = await PresenceKv(services.kv).leave(user_id, services.hub.process_id)
    except KvUnavailable as exc:
        log.warning("Redis unavailable for presence, deciding locally: %s", exc)
        remaining = 0
    if remaining == 0:
        await announce(services, user_id, username, online=False)


async def announce(services: Services, user_id: str, username: str, *, online: bool) -> None:
    message = {"type": "server:presence", "userId": user_id, "username": username,
               "online": online}  # fmt: skip
    await services.events.publish(frame_event(Target.ALL_CLIENTS, "", message))
