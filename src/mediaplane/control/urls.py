"""URLs as records store and show them: never with their secrets."""

from __future__ import annotations

from urllib.parse import urlsplit


def redact(url: str) -> str:
    """The URL as stored and shown: no user:password, no query (tokens live there)."""
    p = urlsplit(url)
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{p.scheme}://{host}{f':{p.port}' if p.port else ''}{p.path}"


def redact_stream_key(url: str) -> str:
    """rtmp://host/app/<key> -> rtmp://host/app/…: the stream key is a secret too."""
    shown = redact(url)
    head, _, path = shown.partition("://")
    if path.count("/") > 1:
        path = path.rsplit("/", 1)[0]
    return f"{head}://{path}/…"
