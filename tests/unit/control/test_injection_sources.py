"""Injection sources: how accepted URLs are classified and shown (control/injections.py,
control/urls.py); which are refused: tests/unit/wire/test_media_urls.py."""

from __future__ import annotations

import pytest

from mediaplane.control.jobs.injections import classify, default_name
from mediaplane.control.urls import redact, redact_stream_key, redact_urls
from mediaplane.wire.media import check_source_url


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


def test_redact_drops_credentials_and_query() -> None:
    shown = redact("rtsp://admin:hunter2@cam.local:8554/stream?token=s3cret")
    assert shown == "rtsp://cam.local:8554/stream"
    assert default_name("media/intro.mp4", "file") == "intro"
    assert default_name(shown, "rtsp") == "rtsp: stream"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtmp://u:pw@host:1935/live/s3cret?x=1", "rtmp://host:1935/live/…"),
        ("rtmps://host/s3cret", "rtmps://host/…"),
        ("rtmp://host/a/b/s3cret", "rtmp://host/a/b/…"),
        ("rtmp://[::1]:1935/live/s3cret", "rtmp://[::1]:1935/live/…"),
    ],
)
def test_stream_key_redaction(url: str, shown: str) -> None:
    assert redact_stream_key(url) == shown


def test_redaction_never_raises_and_walks_job_json() -> None:
    assert redact("rtmp://h:abc/live/k") == "rtmp://…"
    job = {
        "id": "j1",
        "request": {
            "rtmpUrl": "rtmp://host/live/s3cret",
            "inputs": [{"sourceUrl": "rtsp://admin:hunter2@cam/x?token=t0k"}],
            "port": 5004,
        },
    }
    shown = redact_urls(job)
    text = repr(shown)
    assert "s3cret" not in text and "hunter2" not in text and "t0k" not in text
    assert shown["request"]["inputs"][0]["sourceUrl"] == "rtsp://cam/x"
    assert shown["request"]["port"] == 5004 and shown["id"] == "j1"
