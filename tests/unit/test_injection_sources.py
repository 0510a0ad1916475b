"""Injection sources: which URLs are accepted, how they are classified and shown."""

from __future__ import annotations

import pytest

from mediaplane.control.injections import classify, default_name
from mediaplane.control.urls import redact
from mediaplane.media.models import check_source_url


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://cdn.example/a/intro.mp4", "http"),
        ("https://cdn.example/live/index.M3U8?token=x", "hls"),
        ("rtmp://127.0.0.1:1935/live/x", "rtmp"),
        ("rtmps://media.example/app/key", "rtmp"),
        ("rtsp://cam.local:8554/stream", "rtsp"),
        ("RTSPS://cam.local/stream", "rtsp"),
    ],
)
def test_accepted_urls_and_their_type(url: str, kind: str) -> None:
    assert check_source_url(url) == url
    assert classify(url) == kind


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/x.mp4",
        "gopher://example.com/",
        "javascript:alert(1)",
        "http://",
        "http://host/a b.mp4",
        "http://host/a\nb.mp4",
        "http://host:0/x",
        "http://host:99999/x",
        "//host/x.mp4",
    ],
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(ValueError):
        check_source_url(url)


def test_redact_drops_credentials_and_query() -> None:
    shown = redact("rtsp://admin:hunter2@cam.local:8554/stream?token=s3cret")
    assert shown == "rtsp://cam.local:8554/stream"
    assert default_name("media/intro.mp4", "file") == "intro"
    assert default_name(shown, "rtsp") == "rtsp: stream"
