"""The client's address behind trusted proxies (api.md §2.11, TRUST_PROXY_HOPS): pure, so the
HTTP edge and the WebSocket upgrade compute it the same way."""

from __future__ import annotations

from typing import Final

UNKNOWN: Final = "unknown"


def client_address(
    forwarded_for: str, real_ip: str, peer: str | None, *, trust_proxy: bool, hops: int
) -> str:
    """The address the rate limits key on.

    Args:
        forwarded_for: the `X-Forwarded-For` header ("" when absent).
        real_ip: the `X-Real-IP` header ("" when absent).
        peer: the socket's peer address, if known.
        trust_proxy: TRUST_PROXY; without it the headers are ignored.
        hops: TRUST_PROXY_HOPS: the entry taken is `hops` from the right.

    Returns:
        The address, or "unknown".
    """
    if not trust_proxy:
        return peer or UNKNOWN
    forwarded = [p for p in (part.strip() for part in forwarded_for.split(",")) if p]
    if forwarded:
        return forwarded[max(0, len(forwarded) - hops)]
    return real_ip.strip() or UNKNOWN
