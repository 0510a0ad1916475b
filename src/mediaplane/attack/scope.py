"""Only your own deployment: a target on loopback or an address of this machine, or one
the operator states is theirs (`--own`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from mediaplane.url_guard import is_own_address, resolve


class OutOfScope(Exception):
    """The target is not this machine and the operator did not say it is theirs."""


def check_scope(url: str, *, owned: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutOfScope(f"{url!r} is not an http(s) URL of a control plane")
    if owned:
        return
    addresses = resolve(parts.hostname, parts.port or 0)
    if not addresses:
        raise OutOfScope(f"{parts.hostname} does not resolve")
    foreign = [str(a) for a in addresses if not (a.is_loopback or is_own_address(a))]
    if foreign:
        raise OutOfScope(
            f"{parts.hostname} ({', '.join(foreign)}) is not this machine: the attack suite "
            "is for your own deployment; pass --own if it is yours"
        )
