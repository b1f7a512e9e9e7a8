"""The SSRF guard for router base URLs (api.md §10.5): WHATWG hosts, ranges, DNS."""

from __future__ import annotations

import ipaddress
import logging
import socket

import pytest
import trio

from agentim.errors import AgentImError
from agentim.routing.ssrf import (
    SSRF_ERROR,
    PrivateNetworkRefused,
    check_llm_base_url,
    check_resolved_address,
    is_blocked_host,
    is_private_ip,
    is_valid_url,
    parse_ipv4,
    parse_url,
)

REFUSED_URLS = [
    "http://127.0.0.1",
    "http://0x7f000001",
    "http://[::ffff:7f00:1]",
    "http://[::ffff:127.0.0.1]",
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost:11434",
    "http://LOCALHOST",
    "http://10.0.0.1",
    "http://017700000001",
    "http://2130706433",
    "http://0x7f.1",
    "http://127.1",
    "http://0.0.0.0",
    "http://[::1]",
    "http://[::]",
    "http://[fd00::1]",
    "http://[fc00::1]",
    "http://[fe80::1]",
    "http://172.16.0.1",
    "http://172.31.255.255",
    "http://192.168.1.10",
    "http://100.64.0.1",
    "http://224.0.0.1",
    "http://255.255.255.255",
    "http://0x7f.example.com",  # rule 3: a hex first label
    "http://0177.example.com",  # rule 3: an octal first label
    "http://%31%32%37.0.0.1",  # percent-encoded host
    "http://\uff11\uff12\uff17.0.0.1",  # fullwidth digits
    "http://user@evil.example@10.0.0.1/",
    "http:\\\\192.168.0.1",  # backslashes are slashes in special schemes
    "http://api.localhost",
    "ftp://example.com",  # not http(s)
    "not a url",
    "http://1.2.3.4.5",  # numeric last label that is not IPv4: no URL at all
]

ALLOWED_URLS = [
    "https://api.openai.com/v1",
    "http://8.8.8.8:8080",
    "http://172.32.0.1",
    "http://100.128.0.1",
    "http://192.169.0.1",
    "http://223.255.255.255",
    "http://[2001:4860:4860::8888]",
    "http://[::ffff:8.8.8.8]",
]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7F.0.0.01", "127.0.0.1"),
        ("192.168.0.1.", "192.168.0.1"),
        ("0x", "0.0.0.0"),
    ],
)
def test_ipv4_forms_are_read_the_whatwg_way(host: str, expected: str) -> None:
    assert str(parse_ipv4(host)) == expected


@pytest.mark.parametrize("host", ["256.0.0.1", "1.2.3.4.5", "4294967296", "1..2", "09.1.1.1"])
def test_invalid_ipv4_forms_fail(host: str) -> None:
    assert parse_ipv4(host) is None


def test_hosts_are_canonical() -> None:
    assert parse_url("http://[::ffff:127.0.0.1]:8080/v1").host == "[::ffff:7f00:1]"  # type: ignore[union-attr]
    assert parse_url("HTTP://Example.COM/v1").host == "example.com"  # type: ignore[union-attr]
    assert parse_url("http://0x7f000001/").host == "127.0.0.1"  # type: ignore[union-attr]


@pytest.mark.parametrize("url", ["http://[::1]:99999", "http://ex ample.com", "http://", "x"])
def test_unparseable_urls(url: str) -> None:
    assert not is_valid_url(url)


def test_zod_url_accepts_non_http_schemes() -> None:
    assert is_valid_url("mailto:someone@example.com")
    assert is_valid_url("ftp://example.com")


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "0.1.2.3", "169.254.169.254", "::1", "::", "::ffff:10.0.0.1",
     "fd12::1", "fe80::1", "64:ff9b::a00:1", "2002:7f00:1::"],
)  # fmt: skip
def test_private_addresses(address: str) -> None:
    assert is_private_ip(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert not is_private_ip(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_refused_urls_raise_the_wire_error_and_log(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="Routers"), pytest.raises(AgentImError) as info:
        await check_llm_base_url(url, allow_private=False)
    assert (info.value.status, info.value.message) == (400, SSRF_ERROR)
    assert any("internal or private networks" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("url", ALLOWED_URLS)
async def test_public_literals_pass(url: str) -> None:
    target = parse_url(url)
    assert target is not None
    assert not is_blocked_host(target)
    if target.ip is not None:
        await check_llm_base_url(url, allow_private=False)


async def test_allow_private_lets_loopback_through_but_not_other_schemes() -> None:
    await check_llm_base_url("http://127.0.0.1:11434/v1", allow_private=True)
    await check_llm_base_url("http://localhost:8000", allow_private=True)
    with pytest.raises(AgentImError):
        await check_llm_base_url("file:///etc/passwd", allow_private=True)


class _IntranetResolver(trio.abc.HostnameResolver):
    """DNS is a third party: this one answers a private address for one name."""

    async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # type: ignore[no-untyped-def]
        if host in ("intranet.example", b"intranet.example"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 0))]
        raise socket.gaierror(socket.EAI_NONAME, "no such name")

    async def getnameinfo(self, sockaddr, flags):  # type: ignore[no-untyped-def]
        raise NotImplementedError


async def test_a_name_resolving_to_a_private_address_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    previous = trio.socket.set_custom_hostname_resolver(_IntranetResolver())
    try:
        with caplog.at_level(logging.WARNING, logger="Routers"), pytest.raises(AgentImError):
            await check_llm_base_url("http://intranet.example:8000/v1", allow_private=False)
    finally:
        trio.socket.set_custom_hostname_resolver(previous)
    assert any("intranet.example" in r.getMessage() for r in caplog.records)
    assert any("internal or private networks" in r.getMessage() for r in caplog.records)


async def test_a_name_that_does_not_resolve_is_allowed() -> None:
    with trio.fail_after(10):
        await check_llm_base_url("http://no-such-host.invalid/v1", allow_private=False)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "0x7f000001", "2130706433"])
async def test_call_time_check_refuses_private_answers(host: str) -> None:
    with pytest.raises(PrivateNetworkRefused):
        await check_resolved_address(host)
    await check_resolved_address(host, allow_private=True)


async def test_call_time_check_passes_public_literals_and_failed_lookups() -> None:
    await check_resolved_address("8.8.8.8")
    await check_resolved_address("2606:4700::1111")
    await check_resolved_address("no-such-host.invalid")
