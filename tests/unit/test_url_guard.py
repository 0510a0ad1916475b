"""The SSRF rule (url_guard): every spelling of a non-public host is refused alike."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from mediaplane.url_guard import (
    REFUSED,
    OutboundPolicy,
    OutboundRefused,
    check_url,
    is_public,
    literal_address,
    parse_allow_entry,
)

# The loopback spellings issue 17 found accepted, and more of their kind.
LOOPBACK_URLS = [
    "http://127.0.0.1:6379/x.mp4",
    "http://localhost:6379/x.mp4",
    "http://LocalHost.:6379/x.mp4",
    "http://media.localhost:6379/x.mp4",
    "http://127.1:6379/x.mp4",
    "http://0x7f000001:6379/x.mp4",
    "http://2130706433:6379/x.mp4",
    "http://0177.0.0.1:6379/x.mp4",
    "http://0x7f.0.0.1:6379/x.mp4",
    "http://127.0.0.2:6379/x.mp4",
    "http://[::1]:6379/x.mp4",
    "http://[::ffff:127.0.0.1]:6379/x.mp4",
    "http://[::ffff:7f00:1]:6379/x.mp4",
    "http://[0:0:0:0:0:0:0:1]:6379/x.mp4",
    "http://0.0.0.0:6379/x.mp4",
    "http://[::]:6379/x.mp4",
    "rtsp://127.0.0.1:6379/x",
    "rtmp://localhost:6379/live/x",
    "https://2130706433/x.m3u8",
]


@pytest.mark.parametrize("url", LOOPBACK_URLS)
async def test_loopback_refused_alike(url: str) -> None:
    with pytest.raises(OutboundRefused) as e:
        await check_url(url, OutboundPolicy())
    assert str(e.value) == REFUSED


@pytest.mark.parametrize("url", LOOPBACK_URLS)
async def test_loopback_allowed_by_the_list(url: str) -> None:
    policy = OutboundPolicy.of(["127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128"])
    # The v4-mapped forms are allowed by the IPv4 entry only if listed as such.
    if "ffff" in url:
        policy = OutboundPolicy.of(["::ffff:127.0.0.0/104"])
    assert await check_url(url, policy)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"), ("10.1", "10.0.0.1"), ("[::1]", "::1"),
        ("fe80::1%eth0", "fe80::1"), ("8.8.8.8", "8.8.8.8"),
    ],
)  # fmt: skip
def test_literal_forms(text: str, address: str) -> None:
    assert literal_address(text) == ipaddress.ip_address(address)


@pytest.mark.parametrize("text", ["example.com", "localhost", "127.0.0.1.nip.io", ""])
def test_names_are_not_literals(text: str) -> None:
    assert literal_address(text) is None


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "224.0.0.1", "239.255.255.250", "255.255.255.255", "0.0.0.0", "192.0.2.1",
        "198.18.0.1", "240.0.0.1", "fe80::1", "fc00::1", "fd12::1", "ff02::1", "::",
        "::1", "fec0::1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a00:1",
        "2002:7f00:1::1", "2002:a00:1::1", "::127.0.0.1", "2001:db8::1",
    ],
)  # fmt: skip
def test_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_allow_entries() -> None:
    assert parse_allow_entry("10.0.0.0/8").network == ipaddress.ip_network("10.0.0.0/8")
    assert parse_allow_entry("127.0.0.1").network == ipaddress.ip_network("127.0.0.1/32")
    assert parse_allow_entry("[::1]:8554").port == 8554
    entry = parse_allow_entry("RTMP.internal:1935")
    assert (entry.host, entry.port) == ("rtmp.internal", 1935)
    for bad in ("", "a b", "host:0", "host:99999", "[::1", "x/y/z"):
        with pytest.raises(ValueError):
            parse_allow_entry(bad)


async def test_allow_by_port_and_name(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = OutboundPolicy.of(["127.0.0.1:1935", "rtmp.internal"])
    assert await check_url("rtmp://127.0.0.1:1935/live/x", policy)
    with pytest.raises(OutboundRefused):
        await check_url("rtmp://127.0.0.1:6379/live/x", policy)
    with pytest.raises(OutboundRefused):  # the default port is 1935, so only explicit
        await check_url("http://127.0.0.1/x", policy)
    _resolves_to(monkeypatch, "10.1.2.3")
    assert await check_url("rtmp://rtmp.internal/live/x", policy)
    with pytest.raises(OutboundRefused):
        await check_url("rtmp://other.internal/live/x", policy)


def _resolves_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    def fake(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


async def test_a_name_with_any_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolves_to(monkeypatch, "8.8.8.8", "127.0.0.1")
    with pytest.raises(OutboundRefused):
        await check_url("http://mixed.example/x.mp4", OutboundPolicy())
    _resolves_to(monkeypatch, "8.8.8.8")
    assert await check_url("http://public.example/x.mp4", OutboundPolicy()) == [
        ipaddress.ip_address("8.8.8.8")
    ]


async def test_an_unresolvable_name_is_refused_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: Any, **_kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(OutboundRefused) as e:
        await check_url("http://nothing.example/x.mp4", OutboundPolicy())
    assert str(e.value) == REFUSED


async def test_this_machines_own_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A public address of this machine reaches its services bound to 0.0.0.0."""
    bound: list[Any] = []

    class Bindable(socket.socket):
        def bind(self, address: Any) -> None:
            bound.append(address)  # as if it were ours

    monkeypatch.setattr(socket, "socket", Bindable)
    with pytest.raises(OutboundRefused):
        await check_url("http://8.8.8.8/x.mp4", OutboundPolicy())
    assert bound == [("8.8.8.8", 0)]


@pytest.mark.parametrize("url", ["http://", "http://[::1/x", "http://h:99999/x"])
async def test_unparsable_refused(url: str) -> None:
    with pytest.raises(OutboundRefused):
        await check_url(url, OutboundPolicy())
