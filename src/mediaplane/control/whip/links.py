"""ICE servers for WHIP/WHEP clients as RFC 9725 section 4.6 Link headers:

    Link: <turn:host:3478?transport=udp>; rel="ice-server"; username="..."; credential="...";
          credential-type="password"

one per URL, on the 201 that creates a session (never on the unauthenticated OPTIONS).
The values need no escaping: usernames are "<digits>:<[A-Za-z0-9_.-]>" and credentials
base64 (mediaplane.turn.credentials)."""

from __future__ import annotations

from mediaplane.turn.credentials import IceServer


def ice_server_links(servers: list[IceServer]) -> list[str]:
    return [
        f'<{url}>; rel="ice-server"; username="{s.username}"; '
        f'credential="{s.credential}"; credential-type="password"'
        for s in servers
        for url in s.urls
    ]
