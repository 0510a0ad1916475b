"""Where a server process may connect when a user gives it a URL (SSRF guard).

Injection sources and RTMP egress targets are URLs a room's admin chooses, and the
media manager connects to them. Without a guard that reaches this machine's and the
private network's services (Redis, the SFU's RPC, a cloud metadata endpoint), and the
error text tells what is behind each port. The rule, in one place for every route and
for the media worker (`media/worker/outbound.py` applies it at connect time):

- the host is resolved; *every* address it resolves to must be a public unicast
  address: not loopback, private, link-local, shared (100.64/10), multicast,
  unspecified, reserved, documentation, IPv4-compatible/-mapped/NAT64/6to4 forms of
  those, nor an address of this machine;
- IPv4 literals in any form the C library accepts are read as it reads them
  (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1` are all 127.0.0.1), and
  `localhost` / `*.localhost` are loopback whatever DNS says;
- unless the operator's allow-list (`MEDIAPLANE_OUTBOUND_ALLOW`) names them: a CIDR
  or address (`10.0.0.0/8`, `127.0.0.1`, `::1/128`), or a host name, either
  optionally with `:port` (`rtmp.internal:1935`, `[::1]:8554`);
- a refusal says the same thing whatever the URL was (`REFUSED`), so the reply does
  not tell a closed port from an open one, or an address from a name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REFUSED = (
    "not allowed: the URL must name a host on a public address (loopback, private, "
    "link-local and this machine's addresses are refused unless the operator allows "
    "them with MEDIAPLANE_OUTBOUND_ALLOW)"
)
RESOLVE_TIMEOUT_S = 5.0
DEFAULT_PORTS = {"http": 80, "https": 443, "rtmp": 1935, "rtmps": 443, "rtsp": 554, "rtsps": 322}

# Ranges Python's is_global misses or that embed an IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


class OutboundRefused(ValueError):
    """The URL may not be connected to; the message is always `REFUSED`."""

    def __init__(self) -> None:
        super().__init__(REFUSED)


@dataclass(frozen=True)
class AllowEntry:
    network: IPNetwork | None = None
    host: str | None = None  # a lower-case name
    port: int | None = None  # None: any port

    def matches(self, host: str, address: IPAddress | None, port: int | None) -> bool:
        """`port` None: not known (a name resolver's check); an entry's port then passes."""
        if self.port is not None and port is not None and self.port != port:
            return False
        if self.host is not None:
            return host.lower().rstrip(".") == self.host
        return address is not None and self.network is not None and address in self.network


def parse_allow_entry(text: str) -> AllowEntry:
    """`10.0.0.0/8`, `127.0.0.1`, `::1/128`, `[::1]:8554`, `host`, `host:1935`."""
    raw = text.strip()
    if not raw:
        raise ValueError("an empty allow-list entry")
    port: int | None = None
    body = raw
    if body.startswith("["):
        inner, sep, rest = body[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"allow-list entry {text!r}: use [v6-address]:port")
        body, port = inner, _port(rest[1:], text) if rest else None
    elif body.count(":") == 1:
        body, port_text = body.split(":")
        port = _port(port_text, text)
    try:
        return AllowEntry(network=ipaddress.ip_network(body, strict=False), port=port)
    except ValueError:
        pass
    name = body.lower().rstrip(".")
    if not name or not all(c.isalnum() or c in "-._" for c in name) or "/" in name:
        raise ValueError(f"allow-list entry {text!r} is not a CIDR, an address or a host name")
    return AllowEntry(host=name, port=port)


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"allow-list entry {entry!r}: the port must be 1-65535")
    return int(text)


@dataclass(frozen=True)
class OutboundPolicy:
    """The allow-list, parsed once (`OutboundPolicy.of(settings.outbound_allow)`)."""

    allow: tuple[AllowEntry, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, entries: Iterable[str]) -> OutboundPolicy:
        return cls(tuple(parse_allow_entry(e) for e in entries))

    def allows(self, host: str, address: IPAddress | None, port: int | None) -> bool:
        """Whether connecting to `address` (what `host` resolved to) on `port` is allowed."""
        if any(entry.matches(host, address, port) for entry in self.allow):
            return True
        if address is None or is_localhost_name(host):
            return False
        return is_public(address) and not is_own_address(address)

    def check_addresses(self, host: str, addresses: Iterable[IPAddress], port: int) -> None:
        found = list(addresses)
        if not found or not all(self.allows(host, a, port) for a in found):
            raise OutboundRefused()


def is_localhost_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an address means (None for a name).

    IPv6 in brackets or not (a zone `%eth0` is dropped: the address decides), IPv4 in
    every form inet_aton reads: decimal, hex, octal, and the short forms (`127.1`)."""
    text = host.strip("[]").split("%", 1)[0]
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(text)
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, NAT64, 6to4)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _V4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """A global unicast address (and, for IPv6 forms of IPv4, the IPv4 one is too)."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return is_public(inner)
    if isinstance(address, ipaddress.IPv6Address) and (
        address in _NAT64_LOCAL or address.is_site_local
    ):
        return False
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return False
    return address.is_global and not (
        address.is_multicast or address.is_loopback or address.is_link_local
        or address.is_private or address.is_reserved or address.is_unspecified
    )  # fmt: skip


def is_own_address(address: IPAddress) -> bool:
    """An address of this machine (binding to it succeeds only then)."""
    family = socket.AF_INET if isinstance(address, ipaddress.IPv4Address) else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((str(address), 0))
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Target:
    """A URL's host and port, as the guard sees them."""

    host: str
    port: int


def target_of(url: str) -> Target:
    """The host and port a URL connects to (the scheme's default port if none)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundRefused() from None
    host = parts.hostname
    if not host:
        raise OutboundRefused()
    return Target(host, port or DEFAULT_PORTS.get(parts.scheme.lower(), 0))


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an address: itself; `localhost`: loopback)."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    if is_localhost_name(host):
        return [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return _addresses(info[4][0] for info in infos)


def _addresses(texts: Iterable[object]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for text in texts:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(str(text).split("%", 1)[0])
            if address not in found:
                found.append(address)
    return found


async def check_url(url: str, policy: OutboundPolicy) -> list[IPAddress]:
    """The addresses `url`'s host resolves to, all allowed; `OutboundRefused` otherwise
    (also when the name does not resolve, within RESOLVE_TIMEOUT_S)."""
    target = target_of(url)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            addresses = await asyncio.to_thread(resolve, target.host, target.port)
    except TimeoutError:
        raise OutboundRefused() from None
    policy.check_addresses(target.host, addresses, target.port)
    return addresses
