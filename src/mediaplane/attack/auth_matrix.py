"""Token kinds x routes: every route that refuses no token refuses each forged one too
(401), and a participant's or a lister's token gets no admin route (never 2xx)."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import jwt

from mediaplane.attack.context import Context
from mediaplane.attack.models import CheckResult

NAME = "auth matrix"
ROOM_ID, JOB_ID = "attack-none", "0123456789abcdef"
# Routes when the target does not publish its OpenAPI (off loopback): the admin ones.
FALLBACK = [
    ("GET", "/api/rooms"), ("POST", "/api/rooms"), ("GET", "/api/rooms/{room}"),
    ("DELETE", "/api/rooms/{room}"), ("GET", "/api/rooms/{room}/participants"),
    ("POST", "/api/tokens"), ("GET", "/api/injections"), ("GET", "/api/recordings"),
    ("POST", "/api/rooms/{room}/injections"), ("POST", "/api/rooms/{room}/egress"),
    ("PUT", "/api/rooms/{room}/participants/{identity}/grants"), ("GET", "/api/system/sfu"),
]  # fmt: skip


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged(admin: str) -> dict[str, str]:
    """Tokens made without the secret from what the admin token shows."""
    claims = jwt.decode(admin, options={"verify_signature": False})
    head, _body, sig = admin.split(".")
    bigger = {**claims, "grants": {**claims.get("grants", {}), "room_create": True,
                                   "room_list": True, "room_admin": True}}  # fmt: skip
    return {
        "garbage": "not-a-token",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(bigger)}.",
        "wrong key": jwt.encode(bigger, secrets.token_hex(32), algorithm="HS256"),
        "one-byte key": jwt.encode(bigger, "k", algorithm="HS256"),
        "tampered claims": f"{head}.{_b64(bigger)}.{sig}",
        "signature cut": f"{head}.{_b64(claims)}.",
        "HS512 wrong key": jwt.encode(bigger, secrets.token_hex(32), algorithm="HS512"),
        "other issuer": jwt.encode({**bigger, "iss": "attacker"}, "x" * 32, algorithm="HS256"),
    }


async def routes(ctx: Context) -> list[tuple[str, str]]:
    async with ctx.http(None) as http:
        r = await http.get("/openapi.json")
    if r.status_code != 200:
        return FALLBACK
    found = []
    for path, ops in r.json().get("paths", {}).items():
        for method in ops:
            if path.startswith("/api/") and method.upper() in ("GET", "POST", "PUT", "DELETE"):
                found.append((method.upper(), path))
    return found or FALLBACK


def _bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def _fill(path: str) -> str:
    out = path
    for name in ("room", "identity", "name"):
        out = out.replace("{" + name + "}", ROOM_ID if name == "room" else "attacker")
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        out = out[:start] + JOB_ID + out[end + 1 :]
    return out


async def run(ctx: Context) -> CheckResult:
    table = await routes(ctx)
    kinds = forged(ctx.admin_token)
    room = await ctx.room("auth")
    participant = await ctx.token("attacker", room=room, room_join=True)
    lister = await ctx.token("lister", room_list=True)
    failures: list[str] = []
    protected = 0
    async with ctx.http(None) as anon:
        for method, path in table:
            url = _fill(path)
            base = await anon.request(method, url, json={})
            if base.status_code >= 500:
                failures.append(f"{method} {path} without a token: {base.status_code}")
            if base.status_code != 401:
                continue  # open route (health, dev token, signed HLS): not this matrix's
            protected += 1
            for kind, tok in kinds.items():
                r = await anon.request(method, url, json={}, headers=_bearer(tok))
                if r.status_code != 401:
                    failures.append(f"{method} {path} with a {kind} token: {r.status_code}")
            admin_only = method != "GET" or path in ("/api/rooms", "/api/injections")
            for kind, tok in (("participant", participant), ("room_list", lister)):
                if kind == "room_list" and method == "GET":
                    continue
                if not admin_only:
                    continue
                real = _fill(path).replace(ROOM_ID, room)
                r = await anon.request(method, real, json={}, headers=_bearer(tok))
                if 200 <= r.status_code < 300 or r.status_code >= 500:
                    failures.append(f"{method} {path} with a {kind} token: {r.status_code}")
    served = await ctx.served(room)
    if served:
        failures.append(served)
    tried = protected * len(kinds)
    if failures:
        return CheckResult(name=NAME, passed=False, detail="; ".join(failures[:6]))
    return CheckResult(
        name=NAME, passed=protected > 0,
        detail=f"{len(kinds)} forged token kinds x {protected} protected routes: {tried} x 401; "
        "participant and room_list tokens refused on admin routes",
    )  # fmt: skip
