"""The worker's connect-time guard, called as GIO calls it (not installed here: that
changes the process's resolvers; the integration tests run it in the worker)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from mediaplane.media.worker.gst import GLib
from mediaplane.media.worker.kinds.inject import Inject
from mediaplane.media.worker.kinds.stream import Stream
from mediaplane.media.worker.outbound import (
    REMOTE_SOURCE_FAILED,
    REMOTE_TARGET_FAILED,
    ProxyGuard,
    ResolverGuard,
)
from mediaplane.url_guard import OutboundPolicy


def _guard(*allow: str) -> ProxyGuard:
    guard = ProxyGuard()
    guard.policy = OutboundPolicy.of(allow)
    return guard


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:6379", "none://127.0.0.2:1935", "rtsp://[::1]:554",
        "http://[::ffff:127.0.0.1]:80", "http://localhost:80", "https://10.0.0.1:443",
        "http://169.254.169.254:80", "http://0.0.0.0:80", "http://", "not a uri",
    ],
)  # fmt: skip
def test_proxy_guard_refuses_addresses(uri: str) -> None:
    with pytest.raises(GLib.Error):
        _guard().check(uri)


def test_proxy_guard_allows_listed_and_public() -> None:
    assert _guard("127.0.0.1:8554").check("rtsp://127.0.0.1:8554") == ["direct://"]
    with pytest.raises(GLib.Error):
        _guard("127.0.0.1:8554").check("rtsp://127.0.0.1:6379")
    assert _guard().check("http://8.8.8.8:80") == ["direct://"]
    # A name is left to the resolver guard, which sees what it resolves to.
    assert _guard().check("http://example.com:80") == ["direct://"]


def _resolves_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    def fake(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_resolver_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a name resolves to is checked, and exactly that is what GIO connects to."""
    guard = ResolverGuard(OutboundPolicy())
    _resolves_to(monkeypatch, "8.8.8.8")
    assert [a.to_string() for a in guard.lookup("public.example")] == ["8.8.8.8"]
    _resolves_to(monkeypatch, "127.0.0.1")  # rebinding: the same name, now loopback
    with pytest.raises(GLib.Error):
        guard.lookup("public.example")
    _resolves_to(monkeypatch, "8.8.8.8", "10.0.0.1")
    with pytest.raises(GLib.Error):
        guard.lookup("public.example")
    with pytest.raises(GLib.Error):
        guard.lookup("localhost")
    allowed = ResolverGuard(OutboundPolicy.of(["10.0.0.0/8"]))
    assert [a.to_string() for a in allowed.lookup("public.example")] == ["8.8.8.8", "10.0.0.1"]


def test_remote_errors_are_generic() -> None:
    """What a URL source or an RTMP target answered never becomes the job's error."""
    inject: Any = object.__new__(Inject)
    inject.source = "http://example.com/x.mp4"
    inject.refusals = ["a URL source may not open a local file (file:///x): refused"]
    own = f"cannot play the source: job-1: {inject.refusals[0]}"
    assert inject.public_error("job-1", own) is None
    assert inject.public_error("souphttpsrc0", "Unauthorized") == REMOTE_SOURCE_FAILED
    assert inject.public_error("", "no media within 10 s") == REMOTE_SOURCE_FAILED
    inject.source = "/data/recordings/inject/a.mp4"
    assert inject.public_error("filesrc0", "No such file") is None
    stream: Any = object.__new__(Stream)
    stream.config = type("C", (), {"container": "flv"})()
    assert stream.public_error("rtmp2sink0", "Connection refused") == REMOTE_TARGET_FAILED
    assert stream.public_error("vp8dec0", "decoding error") is None
