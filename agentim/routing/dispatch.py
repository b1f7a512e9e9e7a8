"""Which agents get a message (realtime.md §3.3, §3.6, §3.7): pure decisions, no I/O.

The I/O around them (room rows, the router LLM, Redis counters and visited sets) lives in
actions/routing.py; each `Targets` says where a message goes, or why it goes nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs

from agentim.protocol.mentions import resolve_mentions

DIRECT: Final = "direct"
BROADCAST: Final = "broadcast"
API_CONNECTION: Final = "api"  # agents without a gateway: never broadcast candidates (§3.3)


@attrs.frozen
class AgentMember:
    """An agent member of the room, as routing sees it."""

    id: str
    name: str
    status: str
    connection_type: str = "cli"
    type: str = "generic"


@attrs.frozen
class Targets:
    mode: str  # DIRECT or BROADCAST; meaningless when agent_ids is empty
    agent_ids: list[str]
    reason: str = ""  # why nobody, for the routeToAgents log line


def nobody(reason: str) -> Targets:
    return Targets(DIRECT, [], reason)


def choose_targets(mentions: Sequence[str], members: Sequence[AgentMember]) -> Targets:
    """The agents a user message mentions (the direct case of realtime.md §3.3).

    Args:
        mentions: the names parsed from the sanitized content, in order.
        members: the room's agent members in DB order.

    Returns:
        The resolved mentioned agents (each once, mention order) in direct mode, or nobody when
        none resolves (the caller then tries the broadcast case).
    """
    if not members:
        return nobody("no agent members")
    resolved = _resolve(mentions, members)
    return Targets(DIRECT, resolved) if resolved else nobody("no agent member mentioned")


def broadcast_candidates(members: Sequence[AgentMember]) -> list[AgentMember]:
    """The agents the router LLM may choose: members not connected through the API (§3.3)."""
    return [member for member in members if member.connection_type != API_CONNECTION]


def broadcast_targets(chosen: Sequence[str], candidates: Sequence[AgentMember]) -> Targets:
    """The router LLM's answer as targets: candidates only, each once (DIFFERENCES D11)."""
    known = {candidate.id for candidate in candidates}
    ids = list(dict.fromkeys(agent_id for agent_id in chosen if agent_id in known))
    return Targets(BROADCAST, ids) if ids else nobody("router LLM chose no agent")


def chain_targets(
    mentions: Sequence[str], members: Sequence[AgentMember], sender_id: str
) -> list[str]:
    """The agents an agent's reply mentions, each once and never the sender itself (§3.6)."""
    return [agent_id for agent_id in _resolve(mentions, members) if agent_id != sender_id]


def chain_too_deep(depth: int, max_depth: int) -> bool:
    """§3.6 step 1: a reply at `depth` goes on only below `max_depth`."""
    return depth >= max_depth


def over_rate_limit(count: int, limit: int) -> bool:
    """§3.7: the `limit`-th reply in a window is still routed, the next one is not."""
    return count > limit


def _resolve(mentions: Sequence[str], members: Sequence[AgentMember]) -> list[str]:
    if not mentions or not members:
        return []
    return resolve_mentions(list(mentions), [(m.id, m.name, m.status) for m in members])
