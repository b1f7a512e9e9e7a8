"""HTTP side of the per-IP rate limits (api.md §2.4): the limit classes and the headers.

The counting (Redis, per process during an outage) is routing/ratelimit.py's, shared with the
WebSocket edge and agent routing; these names stay importable from here.
"""

from __future__ import annotations

from typing import Final

from agentim.routing.ratelimit import (
    FALLBACK_MAX_KEYS,
    IP_LIMITS,
    IP_WINDOW_S,
    Decision,
    RateLimiter,
)

__all__ = ["FALLBACK_MAX_KEYS", "LIMITS", "WINDOW_S", "Decision", "RateLimiter", "rate_headers"]

WINDOW_S: Final = IP_WINDOW_S
LIMITS: Final = IP_LIMITS  # the same dict: a class added here is enforced everywhere


def rate_headers(decision: Decision) -> dict[str, str]:
    """X-RateLimit-Limit/-Remaining (and Retry-After when refused); none while Redis is down."""
    return decision.headers()
