"""protocol/forwarded.client_address: the one client-IP rule of HTTP and the WS upgrade."""

from __future__ import annotations

import pytest

from agentim.protocol.forwarded import client_address


@pytest.mark.parametrize(
    ("forwarded_for", "real_ip", "hops", "expected"),
    [
        ("203.0.113.9", "", 1, "203.0.113.9"),
        ("198.51.100.1, 203.0.113.9", "", 1, "203.0.113.9"),  # the proxy appended the client
        ("198.51.100.1, 203.0.113.9, 10.0.0.2", "", 2, "203.0.113.9"),  # two trusted hops
        ("203.0.113.9", "", 5, "203.0.113.9"),  # more hops than entries: the leftmost
        (" , 203.0.113.9 ,", "", 1, "203.0.113.9"),  # blanks ignored
        ("", " 192.0.2.4 ", 1, "192.0.2.4"),  # no X-Forwarded-For: X-Real-IP
        ("", "", 1, "unknown"),
    ],
)
def test_behind_a_trusted_proxy(forwarded_for: str, real_ip: str, hops: int, expected: str) -> None:
    got = client_address(forwarded_for, real_ip, "10.0.0.1", trust_proxy=True, hops=hops)
    assert got == expected


def test_without_trust_proxy_the_headers_are_ignored() -> None:
    assert client_address("203.0.113.9", "192.0.2.4", "10.0.0.1", trust_proxy=False, hops=1) == (
        "10.0.0.1"
    )
    assert client_address("203.0.113.9", "", None, trust_proxy=False, hops=1) == "unknown"
