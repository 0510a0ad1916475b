"""Signed HLS URLs: a playlist link that needs no token in it.

`sig` = HMAC-SHA256(the API secret, "hls-url\\n{room}\\n{egress id}\\n{expires}") in hex;
`expires` a Unix time. The playlist served under a signature lists its segments with the
same `expires` and `sig` (segments inherit it), so a player needs nothing but the link.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode


class SignatureError(Exception):
    """The signed URL is expired, forged or for another egress."""


def sign(secret: str, room: str, egress_id: str, expires: int) -> str:
    msg = f"hls-url\n{room}\n{egress_id}\n{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def query(secret: str, room: str, egress_id: str, ttl_s: int, now: float | None = None) -> str:
    """`expires=...&sig=...` valid for `ttl_s`."""
    expires = int(now if now is not None else time.time()) + ttl_s
    return urlencode({"expires": expires, "sig": sign(secret, room, egress_id, expires)})


def verify(
    secret: str, room: str, egress_id: str, expires: int, sig: str, now: float | None = None
) -> None:
    t = now if now is not None else time.time()
    if not hmac.compare_digest(sign(secret, room, egress_id, expires), sig.lower()):
        raise SignatureError("invalid HLS URL signature")
    if expires < t:
        raise SignatureError("the signed HLS URL has expired: ask for a new one")
