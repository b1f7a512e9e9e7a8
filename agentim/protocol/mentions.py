"""Mentions, parsed and resolved by the server (realtime.md §3.2); clients' lists are ignored."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

# JS `@(\w[\w-]*)` without the unicode flag: ASCII word characters only.
_MENTION: Final = re.compile(r"@([A-Za-z0-9_][A-Za-z0-9_-]*)", re.ASCII)
_ONLINE: Final = "online"


def parse_mentions(content: str) -> list[str]:
    """Return the distinct mentioned names in order of first appearance."""
    return list(dict.fromkeys(match[1] for match in _MENTION.finditer(content)))


def resolve_mentions(names: list[str], agents: Sequence[tuple[str, str, str]]) -> list[str]:
    """Map mentioned names to agent ids, in mention order, skipping names that match no agent.

    Args:
        names: mentioned names, as `parse_mentions` returns them.
        agents: `(agent_id, name, status)` of the room's agent members, in DB order.

    Returns:
        Distinct agent ids. Names match case-sensitively; among agents sharing a name, the first
        online one wins, else the first one.
    """
    by_name = _pick_by_name(agents)
    ids = (by_name[name] for name in names if name in by_name)
    return list(dict.fromkeys(ids))


def _pick_by_name(agents: Sequence[tuple[str, str, str]]) -> dict[str, str]:
    chosen: dict[str, tuple[str, str]] = {}  # name -> (agent_id, status)
    for agent_id, name, status in agents:
        current = chosen.get(name)
        if current is None or (current[1] != _ONLINE and status == _ONLINE):
            chosen[name] = (agent_id, status)
    return {name: agent_id for name, (agent_id, _) in chosen.items()}
