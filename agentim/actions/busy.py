"""Backlogged and offline agents (head-gap B18, B25; DIFFERENCES D12, D15): what a user is told.

A gateway reports each agent's queue of waiting messages (`gateway:agent_status.queueDepth`).
While an agent has a backlog, one user may send it one message per cooldown of 15 s per queued
message (at most 120 s); a message inside the cooldown is not delivered to that agent, and the
sender gets a `System` message saying how long to wait. A message to an agent whose gateway is
offline gets the room a `System` message. Neither system message is stored (as in 631a1ad).

Both the queue depth (`agent:queue:<agentId>`) and each sender's last delivery to an agent
(`cooldown:<userId>:<agentId>`, epoch ms) live in Redis, so every hub process sees the same
backlog and cooldown. With Redis down there is no cooldown: messages are delivered (D16).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Final

from agentim.protocol.events import Event, Target, frame_event
from agentim.protocol.ids import new_id
from agentim.protocol.timefmt import iso_now
from agentim.services import Services
from agentim.store.cooldowns import claim_cooldown
from agentim.store.kv import KvUnavailable

log = logging.getLogger("GatewayHandler")

COOLDOWN_PER_QUEUED_MS: Final = 15_000  # 631a1ad's AGENT_COOLDOWN_BASE_MS
MAX_COOLDOWN_MS: Final = 120_000  # 631a1ad's AGENT_COOLDOWN_MAX_MS
# A depth is reported again whenever it changes; the TTL only bounds a value whose agent's
# gateway vanished without a word (on a clean unregister or disconnect it is deleted).
QUEUE_TTL_S: Final = 3600
COOLDOWN_TTL_S: Final = MAX_COOLDOWN_MS // 1000  # a last-send time older than this is moot


def queue_key(agent_id: str) -> str:
    return f"agent:queue:{agent_id}"


def cooldown_ms(queue_depth: int) -> int:
    """15 s per queued message, at most 2 minutes; 0 for an agent without a backlog."""
    return min(COOLDOWN_PER_QUEUED_MS * queue_depth, MAX_COOLDOWN_MS) if queue_depth > 0 else 0


def busy_text(name: str, queue_depth: int, wait_s: int) -> str:
    plural = "" if queue_depth == 1 else "s"
    return (f"Agent @{name} is busy ({queue_depth} message{plural} pending). "
            f"Please wait {wait_s}s before sending another message.")  # fmt: skip


def offline_text(name: str) -> str:
    return f"Agent @{name} is currently offline and cannot receive messages."


def system_message(room_id: str, content: str) -> dict[str, Any]:
    """A `server:new_message` from `System`, not stored (631a1ad's routing notices)."""
    return {"type": "server:new_message", "message": {
        "id": new_id(), "roomId": room_id, "senderId": "system", "senderType": "system",
        "senderName": "System", "type": "system", "content": content, "mentions": [],
        "createdAt": iso_now(),
    }}  # fmt: skip


# queue depths (gateway side) -----------------------------------------------------------------
async def record_queue_depth(services: Services, agent_id: str, depth: int) -> None:
    """`gateway:agent_status.queueDepth`: kept while positive, dropped at 0."""
    try:
        if depth > 0:
            await services.kv.set(queue_key(agent_id), str(depth), ex=QUEUE_TTL_S)
        else:
            await services.kv.delete(queue_key(agent_id))
    except KvUnavailable as exc:
        log.warning("Redis unavailable to record agent %s's queue depth: %s", agent_id, exc)


async def forget_queue_depths(services: Services, agent_ids: list[str]) -> None:
    """The agents left their gateway (unregistered, re-registered or disconnected)."""
    if not agent_ids:
        return
    try:
        await services.kv.delete(*(queue_key(a) for a in agent_ids))
    except KvUnavailable as exc:
        log.warning("Redis unavailable to drop queue depths: %s", exc)


# the user's side (routing) -------------------------------------------------------------------
class Cooldowns:
    """One routed user message's cooldown checks: every target's queue depth is read in one
    Redis round trip (`load`); each backlogged target's cooldown is claimed atomically."""

    def __init__(self, services: Services, sender_id: str, room_id: str) -> None:
        self.services = services
        self.sender_id = sender_id
        self.room_id = room_id
        self._depths: dict[str, int] = {}  # agent id → queue depth

    async def load(self, agent_ids: list[str]) -> None:
        """Read the targets' queue depths (none while Redis is away: D16, no cooldown)."""
        ids = list(dict.fromkeys(agent_ids))
        try:
            values = await self.services.kv.mget(*(queue_key(a) for a in ids))
        except KvUnavailable:
            return
        self._depths = {agent_id: _int(value) for agent_id, value in zip(ids, values, strict=True)}

    async def claim(self, agent_id: str, name: str) -> Event | None:
        """None when the message may go to the agent (a backlogged agent's cooldown for this
        sender starts now), else the busy notice for the sender."""
        depth = self._depths.get(agent_id, 0)
        wait = cooldown_ms(depth)
        if wait == 0:
            return None
        try:
            left = await claim_cooldown(
                self.services.kv, self.sender_id, agent_id,
                now_ms=int(time.time() * 1000), wait_ms=wait, ttl_s=COOLDOWN_TTL_S,
            )  # fmt: skip
        except KvUnavailable:
            return None
        if left == 0:
            return None
        wait_s = math.ceil(left / 1000)
        log.info("Agent %s is busy (%d pending); message from user %s held back for %d s",
                 agent_id, depth, self.sender_id, wait_s)  # fmt: skip
        notice = system_message(self.room_id, busy_text(name, depth, wait_s))
        return frame_event(Target.USER, self.sender_id, notice)


def offline_notice(room_id: str, name: str) -> Event:
    """To the room: the agent cannot be reached (D12 also logs and counts it)."""
    return frame_event(Target.ROOM, room_id, system_message(room_id, offline_text(name)))


def _int(text: str | None) -> int:
    try:
        return max(0, int(text)) if text else 0
    except ValueError:
        return 0
