"""Time-limited TURN credentials by the TURN REST API scheme (coturn `use-auth-secret`).

username   = "<expiry unix time>:<identity>"
credential = base64(HMAC-SHA1(turn_secret, username))

coturn recomputes the credential from its `static-auth-secret` and refuses the username
once its expiry time has passed (401 on Allocate, Refresh and CreatePermission), so a
credential seen by someone else is worth at most `turn_credential_ttl_s`. Nothing is
stored: every join mints new ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time

from pydantic import BaseModel

from mediaplane.settings import Settings, is_loopback

DEFAULT_TLS_PORTS = (443, 5349)  # 443 where we may bind it, else the IANA turns port
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class IceServer(BaseModel):
    """One entry of RTCConfiguration.iceServers (W3C WebRTC), as the join reply has it."""

    urls: list[str]
    username: str
    credential: str


WILDCARDS = ("0.0.0.0", "::", "")


def turn_address(settings: Settings) -> str:
    """Where clients reach TURN: the address the SFU announces (MEDIAPLANE_ANNOUNCED_ADDRESS,
    or rtc_announced_address when set for media alone), else its RTC listen address. An
    IP address or a DNS name (coturn is given what it resolves to, turn/server.py)."""
    return (settings.sfu_announced_address or settings.rtc_listen_ip).strip("[]")


def turn_enabled(settings: Settings) -> bool:
    """On unless set off; by default off when the address is loopback (a client on this
    machine reaches the SFU directly, and coturn never relays to loopback peers) or a
    wildcard (no address to hand out)."""
    if settings.turn is not None:
        return settings.turn
    address = turn_address(settings)
    return address not in WILDCARDS and not is_loopback(address)


def tls_port(settings: Settings) -> int:
    """The TURN/TLS port: the setting, else 443 when this process may bind ports below
    1024 (root), else 5349. Every process (the one running coturn, every control plane
    handing out credentials) derives the same port from the same settings; coturn not
    getting it is an error at start, naming the setting."""
    if settings.turn_tls_port is not None:
        return settings.turn_tls_port
    return DEFAULT_TLS_PORTS[0] if os.geteuid() == 0 else DEFAULT_TLS_PORTS[1]


def mint(secret: str, identity: str, ttl_s: int, now: float | None = None) -> tuple[str, str]:
    """(username, credential) valid for `ttl_s` from `now`. The identity is reduced to
    [A-Za-z0-9_.-] (64 at most): it only names the user in coturn's log, and the pair
    travels in quoted HTTP header values (WHIP Link headers)."""
    expiry = int(now if now is not None else time.time()) + ttl_s
    username = f"{expiry}:{_UNSAFE.sub('_', identity)[:64] or '_'}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(settings: Settings, identity: str, now: float | None = None) -> list[IceServer]:
    """The TURN servers a participant may use, with fresh credentials; [] when TURN is off.
    UDP first (the cheapest relay), then TCP on the same port, then TLS (a strict firewall
    lets 443 through)."""
    if not turn_enabled(settings):
        return []
    host = turn_address(settings)
    host = f"[{host}]" if ":" in host else host
    username, credential = mint(
        settings.secret("turn_secret"), identity, settings.turn_credential_ttl_s, now
    )
    urls = [
        f"turn:{host}:{settings.turn_port}?transport=udp",
        f"turn:{host}:{settings.turn_port}?transport=tcp",
        f"turns:{host}:{tls_port(settings)}?transport=tcp",
    ]
    return [IceServer(urls=urls, username=username, credential=credential)]
