"""Which URLs a job request accepts (wire/media.py: injection sources, RTMP targets)."""

from __future__ import annotations

import pytest

from mediaplane.wire.media import check_rtmp_url, check_source_url


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


@pytest.mark.parametrize(
    "url",
    [
        "rtmp://",
        "rtmp:///live/key",
        "rtmp://h:abc/live/k",
        "rtmp://h:99999/live/k",
        "rtmp://[::1/live/k",
        "http://host/live/k",
        "rtmp://host/live/a b",
    ],
)
def test_refused_rtmp_urls(url: str) -> None:
    with pytest.raises(ValueError):
        check_rtmp_url(url)
