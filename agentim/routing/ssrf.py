"""SSRF guard for router LLM base URLs (api.md §10.5).

Hosts are read the WHATWG way, so `0x7f.1`, `2130706433` or `[::ffff:7f00:1]` are the loopback
address they name. Every refusal is logged with the words operators grep: `internal or private
networks` (TROUBLESHOOTING "SSRF attempts").
"""

from __future__ import annotations

import ipaddress
import logging
import re
import unicodedata
from typing import Final
from urllib.parse import unquote

import attrs
import trio

from agentim.errors import AgentImError

log = logging.getLogger("Routers")

SSRF_ERROR: Final = "LLM base URL must not point to internal or private networks"
DNS_TIMEOUT_S: Final = 5.0  # a resolver that hangs counts as a failed lookup (allowed, §10.5)
MAX_PORT: Final = 65535

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# WHATWG: leading/trailing C0 controls and spaces are stripped, tabs and newlines removed.
_C0_OR_SPACE: Final = "".join(chr(code) for code in range(0x21))
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.DOTALL)
_HOST_SCHEMES: Final = frozenset({"http", "https", "ws", "wss", "ftp"})
_AUTHORITY_END: Final = re.compile(r"[/\\?#]")
_FORBIDDEN_DOMAIN: Final = frozenset(
    "\x00\t\n\r #/:<>?@[\\]^|%\x7f" + "".join(chr(code) for code in range(0x20))
)
_IDEOGRAPHIC_DOTS: Final = ("\u3002", "\uff0e", "\uff61")
_RADIX_DIGITS: Final = {10: "0123456789", 16: "0123456789abcdefABCDEF", 8: "01234567"}
# §10.5 rule 3: a hex or octal first label, on the host as WHATWG leaves it.
_NUMERIC_FIRST_LABEL: Final = re.compile(r"^(0x[0-9a-f]+|0[0-7]+)(\.|$)", re.IGNORECASE)

_PRIVATE_V4: Final = tuple(
    ipaddress.IPv4Network(net)
    for net in ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
                "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/3")  # 224/3: first octet ≥ 224
)  # fmt: skip
_PRIVATE_V6: Final = tuple(
    ipaddress.IPv6Network(net)
    for net in ("::/128", "::1/128", "fc00::/7", "fe80::/10",
                # beyond §10.5: deprecated site-local, multicast, local-use NAT64
                "fec0::/10", "ff00::/8", "64:ff9b:1::/48")
)  # fmt: skip
# IPv6 ranges that carry an IPv4 address in their last 32 bits: judge that address instead.
_EMBEDS_V4: Final = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("64:ff9b::/96"))


@attrs.frozen
class UrlTarget:
    """What a URL points at: scheme, canonical host, and the address when the host is one."""

    scheme: str
    host: str  # dotted IPv4, bracketed IPv6, or a lower-case ASCII domain; "" for other schemes
    ip: IpAddress | None = None
    written: str = ""  # the host as the URL spells it, for the refusal log

    @property
    def described(self) -> str:
        """`0x7f000001 (127.0.0.1)`: how it was written, and what it is."""
        if self.written and self.written.lower() != self.host:
            return f"{self.written} ({self.host})"
        return self.host


class PrivateNetworkRefused(Exception):
    """The host resolves to an internal or private address."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} resolves to internal or private networks")
        self.host = host


def _ipv4_number(part: str) -> int | None:
    """WHATWG IPv4 number parser: decimal, `0x` hex or leading-zero octal."""
    if not part:
        return None
    radix = 10
    if len(part) >= 2 and part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) >= 2 and part[0] == "0":
        part, radix = part[1:], 8
    if not part:
        return 0
    if any(char not in _RADIX_DIGITS[radix] for char in part):
        return None
    return int(part, radix)


def _labels(host: str) -> list[str]:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    return parts


def ends_in_number(host: str) -> bool:
    """WHATWG: a host whose last label is numeric must parse as IPv4 (or the URL fails)."""
    last = _labels(host)[-1]
    if last and all(char in _RADIX_DIGITS[10] for char in last):
        return True
    return _ipv4_number(last) is not None


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """WHATWG IPv4 parser: 1-4 parts; the last part fills the remaining bytes."""
    parts = _labels(host)
    numbers = [_ipv4_number(part) for part in parts]
    if len(parts) > 4 or any(number is None for number in numbers):
        return None
    values = [number for number in numbers if number is not None]
    if any(value > 255 for value in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    address = values[-1] + sum(value * 256 ** (3 - i) for i, value in enumerate(values[:-1]))
    return ipaddress.IPv4Address(address)


def _domain_to_ascii(domain: str) -> str | None:
    """Lower-case ASCII; Unicode goes through NFKC and IDNA (fullwidth digits become digits)."""
    if domain.isascii():
        return domain.lower()
    domain = unicodedata.normalize("NFKC", domain)
    for dot in _IDEOGRAPHIC_DOTS:
        domain = domain.replace(dot, ".")
    domain = domain.lower()
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def _parse_host(raw: str) -> tuple[str, IpAddress | None] | None:
    if raw.startswith("["):
        inner = raw[1:-1]
        if not raw.endswith("]") or "%" in inner:  # zone ids are not URL syntax
            return None
        try:
            address = ipaddress.IPv6Address(inner)
        except ValueError:
            return None
        return f"[{address.compressed}]", address
    domain = _domain_to_ascii(unquote(raw, errors="replace"))
    if not domain or any(char in _FORBIDDEN_DOMAIN for char in domain):
        return None
    if not ends_in_number(domain):
        return domain, None
    ipv4 = parse_ipv4(domain)
    return (str(ipv4), ipv4) if ipv4 is not None else None


def _split_port(host_port: str) -> tuple[str, str]:
    in_brackets = False
    for index, char in enumerate(host_port):
        if char == "[":
            in_brackets = True
        elif char == "]":
            in_brackets = False
        elif char == ":" and not in_brackets:
            return host_port[:index], host_port[index + 1 :]
    return host_port, ""


def _special_host(rest: str) -> tuple[str, str]:
    """(host, port) as written in a special-scheme URL after `scheme:`."""
    rest = rest.lstrip("/\\")
    end = _AUTHORITY_END.search(rest)
    authority = rest[: end.start()] if end else rest
    return _split_port(authority.rsplit("@", 1)[-1])


def _valid_port(port: str) -> bool:
    return not port or (port.isascii() and port.isdigit() and int(port) <= MAX_PORT)


def _split_scheme(url: str) -> tuple[str, str] | None:
    cleaned = url.strip(_C0_OR_SPACE).replace("\t", "").replace("\n", "").replace("\r", "")
    match = _SCHEME.fullmatch(cleaned)
    return (match.group(1).lower(), match.group(2)) if match else None


def parse_url(url: str) -> UrlTarget | None:
    """Read a URL the way WHATWG does for its host; None when it does not parse."""
    split = _split_scheme(url)
    if split is None:
        return None
    scheme, rest = split
    if scheme not in _HOST_SCHEMES:
        return UrlTarget(scheme, "")
    written, port = _special_host(rest)
    parsed = _parse_host(written) if written and _valid_port(port) else None
    return UrlTarget(scheme, parsed[0], parsed[1], written) if parsed else None


def is_valid_url(url: str) -> bool:
    """zod's `.url()`: `new URL(url)` succeeds (non-special schemes accept nearly anything)."""
    return parse_url(url) is not None


def _private_v4(address: ipaddress.IPv4Address) -> bool:
    return any(address in net for net in _PRIVATE_V4)


def is_private_ip(address: IpAddress) -> bool:
    """The §10.5 ranges; IPv6 forms that carry an IPv4 address are judged by that address."""
    if isinstance(address, ipaddress.IPv4Address):
        return _private_v4(address)
    mapped = address.ipv4_mapped or address.sixtofour
    if mapped is not None:
        return _private_v4(mapped)
    if any(address in net for net in _PRIVATE_V6):
        return True
    if any(address in net for net in _EMBEDS_V4):
        return _private_v4(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return False


def is_blocked_host(target: UrlTarget) -> bool:
    """Rules 2-4 of §10.5 on the parsed host (no DNS)."""
    if target.ip is not None:
        return is_private_ip(target.ip)
    name = target.host.removesuffix(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    return _NUMERIC_FIRST_LABEL.match(target.host) is not None


def _address(text: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 scope id
    except ValueError:
        return None


async def resolve(host: str) -> list[IpAddress]:
    """A and AAAA answers for `host`; a failed or hung lookup gives no answers."""
    with trio.move_on_after(DNS_TIMEOUT_S):
        try:
            infos = await trio.socket.getaddrinfo(host, None, type=trio.socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return []
        found = (_address(str(info[4][0])) for info in infos)
        return [address for address in found if address is not None]
    return []


async def resolves_to_private(host: str) -> bool:
    return any(is_private_ip(address) for address in await resolve(host))


def _refuse(host: str) -> AgentImError:
    log.warning("Refused LLM base URL host %s: internal or private networks are not allowed", host)
    return AgentImError(400, SSRF_ERROR)


async def check_llm_base_url(url: str, *, allow_private: bool) -> None:
    """Refuse a router base URL that points inward (create and update).

    Args:
        url: the `llmBaseUrl` as given.
        allow_private: ROUTER_ALLOW_PRIVATE_NETWORKS; private and loopback targets pass.

    Raises:
        AgentImError: 400 `LLM base URL must not point to internal or private networks`.
    """
    target = parse_url(url)
    if target is None or target.scheme not in ("http", "https"):
        raise _refuse(target.described if target else "(unparseable URL)")
    if allow_private:
        return
    if is_blocked_host(target):
        raise _refuse(target.described)
    if target.ip is None and await resolves_to_private(target.host):
        raise _refuse(target.described)


async def check_resolved_address(host: str, *, allow_private: bool = False) -> None:
    """At call time (DNS rebinding): refuse a host whose current answers are private.

    Args:
        host: the host the HTTP client will connect to (IPv6 with or without brackets).
        allow_private: ROUTER_ALLOW_PRIVATE_NETWORKS.

    Raises:
        PrivateNetworkRefused: a literal or resolved address is private; the caller logs it.
    """
    if allow_private:
        return
    bare = host.removeprefix("[").removesuffix("]")
    literal = _address(bare)
    answers = [literal] if literal is not None else await resolve(bare)
    if any(is_private_ip(address) for address in answers):
        raise PrivateNetworkRefused(host)
