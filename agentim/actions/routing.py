"""Routing to agents (realtime.md §3.3-3.8; D11, D12, D16): readers only queue a hop; the
conversation's router runs `handle_hop`. Each decision is logged (logger `Routing`) with
`routeToAgents`, so `grep "routeToAgents\\|Router LLM"` tells where every message went.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import trio

from agentim.actions import service_agents
from agentim.actions.busy import Cooldowns, offline_notice
from agentim.actions.messages import Sent
from agentim.protocol import gateway as proto
from agentim.protocol.events import Event, Target, frame_event
from agentim.protocol.ids import new_id
from agentim.protocol.mentions import parse_mentions
from agentim.routing.ai_selector import (
    RouterCandidate,
    RouterConfig,
    load_router_config,
    select_agents,
)
from agentim.routing.conversation import Hop
from agentim.routing.dispatch import (
    DIRECT,
    AgentMember,
    Targets,
    broadcast_candidates,
    broadcast_targets,
    chain_targets,
    chain_too_deep,
    choose_targets,
    nobody,
    over_rate_limit,
)
from agentim.routing.fallback import VISITED_TTL_S
from agentim.services import Services
from agentim.store import agents, rooms, service_agents as service_store
from agentim.store.gateways import GatewayKv
from agentim.store.kv import KvUnavailable

log = logging.getLogger("GatewayHandler")
decisions = logging.getLogger("Routing")

VISITED_TTL_WHOLE_S: Final = int(VISITED_TTL_S)  # EXPIRE takes whole seconds


# entry points: sockets' reader tasks ---------------------------------------------------------
# Async by contract (the client endpoint awaits it), though it only queues the hop.
async def route_user_message(services: Services, sent: Sent) -> None:  # noqa: ASYNC124
    """Start a conversation for a stored and broadcast user message; returns at once.

    The room's agent members came with the insert: a room without agents needs no router.
    """
    members = tuple(_member(row) for row in sent.agents)
    hop = Hop(new_id(), sent.message, members=members)
    if not members:
        _log_decision(hop, nobody("no agent members"), quiet=True)
        return
    services.conversations.route(hop)


def route_agent_message(
    services: Services, message: dict[str, Any], *, conversation_id: str | None,
    depth: int | None,
) -> None:  # fmt: skip
    """Continue the chain with a stored and broadcast agent reply (§3.5, §3.6); returns at once.

    Args:
        message: the `server:message_complete` message (its id is the stored one, D5).
        conversation_id: the gateway's, else (absent or empty) a new conversation.
        depth: the gateway's, default 0.
    """
    hop = Hop(conversation_id or new_id(), message, depth or 0, sender_agent_id=message["senderId"])
    services.conversations.route(hop)


async def handle_hop(services: Services, hop: Hop) -> None:
    """Route one hop (the conversation router calls this, one hop at a time)."""
    if hop.sender_agent_id is None:
        await _route_user_message(services, hop)
    else:
        await _route_agent_message(services, hop, hop.sender_agent_id)


# user messages (§3.3, §3.4) ------------------------------------------------------------------
async def _route_user_message(services: Services, hop: Hop) -> None:
    message = hop.message
    members = list(hop.members)  # stored with the message (route_user_message)
    targets = choose_targets(message["mentions"], members)
    if members and not targets.agent_ids:
        targets = await _broadcast(services, message, members)
    _log_decision(hop, targets, quiet=not members)
    await _deliver_user_message(services, hop, targets)


async def _deliver_user_message(services: Services, hop: Hop, targets: Targets) -> None:
    """631a1ad's notices (head-gap B18): the sender hears that a backlogged agent needs a
    pause, the room that an agent is offline; neither is stored."""
    message = hop.message
    names = {member.id: member.name for member in hop.members}
    cooldowns = Cooldowns(services, message["senderId"], message["roomId"])
    candidates = _deliveries(hop, targets, sender_type="user", depth=0)
    await cooldowns.load([d["agentId"] for d in candidates])
    deliveries: list[dict[str, Any]] = []
    notices: list[Event] = []
    for delivery in candidates:
        agent_id = delivery["agentId"]
        refused = await cooldowns.claim(agent_id, names.get(agent_id, agent_id))
        if refused is None:
            deliveries.append(delivery)
        else:
            notices.append(refused)
    offline = await _deliver(services, deliveries)
    for delivery in deliveries:
        agent_id = delivery["agentId"]
        if agent_id in offline:
            notices.append(offline_notice(message["roomId"], names.get(agent_id, agent_id)))
    await services.events.publish_all(notices)


async def _broadcast(
    services: Services, message: dict[str, Any], members: Sequence[AgentMember]
) -> Targets:
    """The room's router LLM picks among the candidates (broadcast rooms only)."""
    room = await rooms.get_room(services.db, message["roomId"])
    if room is None or not room["broadcast_mode"]:
        return nobody("no agent mentioned, not a broadcast room")
    config = await _router(services, message["roomId"])
    if config is None:
        return nobody("broadcast room without a usable router")
    candidates = broadcast_candidates(members)
    if not candidates:
        return nobody("no broadcast candidates")
    offered = await _router_candidates(services, room["id"], candidates)
    chosen = await select_agents(
        services.conversations.http, config, offered, message["content"], room["system_prompt"],
        allow_private=services.settings.router_allow_private_networks,
        timeout_s=services.live.current.router_llm_timeout_s,
        max_agents=services.live.current.router_llm_max_agents,
    )  # fmt: skip
    return broadcast_targets(chosen, candidates)


async def _router_candidates(
    services: Services, room_id: str, candidates: Sequence[AgentMember]
) -> list[RouterCandidate]:
    rows = await rooms.list_context_members(services.db, room_id)
    capabilities = {row["agent_id"]: _capabilities(row["capabilities"]) for row in rows}
    return [RouterCandidate(c.id, c.name, c.type, capabilities.get(c.id, ())) for c in candidates]


def _capabilities(text: str | None) -> tuple[str, ...]:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return ()
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


# agent replies (§3.6, §3.7) ------------------------------------------------------------------
async def _route_agent_message(services: Services, hop: Hop, sender_id: str) -> None:
    message = hop.message
    config = await _router(services, message["roomId"])
    if await _rate_limited(services, sender_id, config):
        log.warning("Agent %s rate limited, message saved but not routed", sender_id)
        _log_decision(hop, nobody(f"agent {sender_id} rate limited"))
        return
    target = target_agent_name(message)
    # 631a1ad: a reply addressed to one agent goes to it alone, mentioned or not; same checks.
    mentions = [target] if target else parse_mentions(message["content"])
    if not mentions:
        _log_decision(hop, nobody("no mentions in the agent reply"), quiet=True)
        return
    max_depth = config.max_chain_depth if config else services.live.current.max_agent_chain_depth
    if chain_too_deep(hop.depth, max_depth):
        log.warning("Chain depth %d exceeds max %d for conversation %s, stopping", hop.depth,
                    max_depth, hop.conversation_id)  # fmt: skip
        _log_decision(hop, nobody(f"chain depth {hop.depth} reached max {max_depth}"))
        return
    targets = await _chain_targets(services, hop, sender_id, mentions)
    depth = hop.depth + 1  # §3.5: one more hop than the reply it answers
    _log_decision(hop, targets, depth=depth)
    await deliver_to_agents(services, _deliveries(hop, targets, sender_type="agent", depth=depth))


def target_agent_name(message: Mapping[str, Any]) -> str | None:
    """The agent a reply is addressed to (`metadata.targetAgentName`), if any."""
    value = (message.get("metadata") or {}).get("targetAgentName")
    return value if isinstance(value, str) and value else None


async def _chain_targets(
    services: Services, hop: Hop, sender_id: str, mentions: list[str]
) -> Targets:
    members = await _members(services, hop.message["roomId"])
    if not members:
        return nobody("no agent members")
    visited = VisitedCheck(services, hop.conversation_id)
    await visited.add(sender_id)
    allowed = [
        agent_id
        for agent_id in chain_targets(mentions, members, sender_id)
        if await visited.allows(agent_id)
    ]
    if allowed:
        return Targets(DIRECT, allowed)
    return nobody("no unvisited agent member " + ("targeted" if target_agent_name(hop.message)
                                                  else "mentioned"))  # fmt: skip


async def _rate_limited(services: Services, agent_id: str, config: RouterConfig | None) -> bool:
    """Count the reply in `ws:agent_rate:<agentId>`; per process while Redis is down (D16)."""
    settings = services.live.current
    window = config.rate_limit_window if config else settings.agent_rate_limit_window
    limit = config.rate_limit_max if config else settings.agent_rate_limit_max
    counted = await services.limiter.count(
        f"ws:agent_rate:{agent_id}", window, what="agent rate limiting"
    )
    return over_rate_limit(counted.count, limit)


class VisitedCheck:
    """`conv:<id>:visited` for one hop (§3.6 steps 3-4): in Redis, or in this process's
    fallback for the whole hop once adding to Redis failed (§3.8, D16)."""

    def __init__(self, services: Services, conversation_id: str) -> None:
        self.services = services
        self.conversation_id = conversation_id
        self.key = f"conv:{conversation_id}:visited"
        self.local = False

    async def add(self, agent_id: str) -> None:
        fallback = self.services.conversations.fallback
        try:
            await self.services.kv.sadd_expire(self.key, agent_id, VISITED_TTL_WHOLE_S)
            fallback.visited_in_use = False
            return
        except KvUnavailable as exc:
            if not fallback.visited_in_use:
                log.warning("Redis unavailable for loop detection, using per-process visited "
                            "sets: %s", exc)  # fmt: skip
                fallback.visited_in_use = True
        self.local = True
        fallback.visited.add(self.key, agent_id, trio.current_time())

    async def allows(self, agent_id: str) -> bool:
        """False (logged) when the agent was visited, or when that cannot be checked."""
        try:
            seen = await self._seen(agent_id)
        except KvUnavailable as exc:
            log.error("Loop detection failed for agent %s in conversation %s: %s. Blocking to "
                      "prevent potential loop.", agent_id, self.conversation_id, exc)  # fmt: skip
            return False
        if seen:
            log.warning("Agent %s already visited in conversation %s, skipping", agent_id,
                        self.conversation_id)  # fmt: skip
        return not seen

    async def _seen(self, agent_id: str) -> bool:
        if self.local:
            visited = self.services.conversations.fallback.visited
            return visited.contains(self.key, agent_id, trio.current_time())
        return await self.services.kv.sismember(self.key, agent_id)


# shared --------------------------------------------------------------------------------------
async def _members(services: Services, room_id: str) -> list[AgentMember]:
    return [_member(row) for row in await agents.list_room_agents(services.db, room_id)]


def _member(row: Mapping[str, Any]) -> AgentMember:
    return AgentMember(row["id"], row["name"], row["status"], row["connection_type"], row["type"])


async def _router(services: Services, room_id: str) -> RouterConfig | None:
    return await load_router_config(
        services.db, room_id, encryption_key=services.settings.encryption_key
    )


def _deliveries(
    hop: Hop, targets: Targets, *, sender_type: str, depth: int
) -> list[dict[str, Any]]:
    message = hop.message
    common: dict[str, Any] = {
        "room_id": message["roomId"], "message_id": message["id"],
        "content": message["content"], "sender_name": message["senderName"],
        "sender_type": sender_type, "routing_mode": targets.mode,
        "conversation_id": hop.conversation_id, "depth": depth,
    }  # fmt: skip
    return [proto.send_to_agent(agent_id=agent_id, **common) for agent_id in targets.agent_ids]


def _log_decision(hop: Hop, targets: Targets, *, depth: int = 0, quiet: bool = False) -> None:
    """One routeToAgents line per hop; routine no-ops (no agents, no mentions) only at debug."""
    message = hop.message
    if targets.agent_ids:
        decisions.info("routeToAgents: message %s in room %s → %s [%s] (conversation %s, depth %d)",
                       message["id"], message["roomId"], targets.mode,
                       ", ".join(targets.agent_ids), hop.conversation_id, depth)  # fmt: skip
        return
    decisions.log(logging.DEBUG if quiet else logging.INFO,
                  "routeToAgents: message %s in room %s → nobody (%s)", message["id"],
                  message["roomId"], targets.reason)  # fmt: skip


async def deliver_to_agents(services: Services, deliveries: Sequence[dict[str, Any]]) -> int:
    """Publish each `server:send_to_agent` to its agent's gateway, wherever it is connected.

    D12: an agent whose gateway is on no live hub process is logged and counted, not sent to.
    With Redis down nothing is known of other processes, so everything is sent.

    Returns:
        How many were sent.
    """
    return len(deliveries) - len(await _deliver(services, deliveries))


async def _deliver(services: Services, deliveries: Sequence[dict[str, Any]]) -> set[str]:
    """deliver_to_agents; returns the ids of the offline agents (not sent to)."""
    if not deliveries:
        return set()
    ids = list(dict.fromkeys(d["agentId"] for d in deliveries))
    # service agents (head-gap A3): the hub itself answers for them, on this process
    if served := await service_store.ids_among(services.db, ids):
        service_agents.start_replies(services, [d for d in deliveries if d["agentId"] in served])
        deliveries = [d for d in deliveries if d["agentId"] not in served]
        ids = [agent_id for agent_id in ids if agent_id not in served]
        if not deliveries:
            return set()
    try:
        live = await GatewayKv(services.kv).live_agents(ids)
    except KvUnavailable:
        live = set(ids)
    offline: set[str] = set()
    events: list[Event] = []
    for delivery in deliveries:
        agent_id = delivery["agentId"]
        if agent_id not in live:
            log.warning("Agent %s is offline; message %s not delivered", agent_id,
                        delivery["messageId"])  # fmt: skip
            services.metrics.undeliverable_total.inc()
            offline.add(agent_id)
            continue
        events.append(frame_event(Target.AGENT, agent_id, delivery))
    await services.events.publish_all(events)  # in order, one round trip
    return offline
