"""URLs as records store and show them: never with their secrets."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def redact(url: str) -> str:
    """The URL as stored and shown: no user:password, no query (tokens live there).

    Never raises: what cannot be parsed is shown as its scheme alone."""
    try:
        p = urlsplit(url)
        port = p.port
    except ValueError:
        return f"{url.partition(':')[0][:16]}://…"
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{p.scheme}://{host}{f':{port}' if port else ''}{p.path}"


def redact_urls(value: Any) -> Any:
    """`value` (JSON) with every URL in it redacted (RTMP stream keys too)."""
    if isinstance(value, dict):
        return {k: redact_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_urls(v) for v in value]
    if isinstance(value, str) and "://" in value:
        scheme = value.partition("://")[0].lower()
        return redact_stream_key(value) if scheme in ("rtmp", "rtmps") else redact(value)
    return value


def redact_stream_key(url: str) -> str:
    """rtmp://host/app/<key> -> rtmp://host/app/…: the stream key is a secret too."""
    shown = redact(url)
    head, _, path = shown.partition("://")
    host, _, rest = path.partition("/")
    # The key is the last segment (rtmp://host/app/key), or the only one (rtmp://host/key).
    app = rest.rsplit("/", 1)[0] if "/" in rest else ""
    return f"{head}://{host}/{app + '/' if app else ''}…"
