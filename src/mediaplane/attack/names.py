"""Ids and names: odd room names on REST and the signaling path, and job ids that would
reach other Redis keys, get a 4xx (or a WS refusal), never a 500 or `internal`."""

from __future__ import annotations

from urllib.parse import quote

from websockets.exceptions import ConnectionClosed, InvalidStatus

from mediaplane.attack.context import Context
from mediaplane.attack.models import CheckResult

NAME = "ids and names"
NAMES = ["x" * 5000, "a b", "☃", "sec:peers", "..", "a/../b", "%00", "mp:room:x", ""]
# ("..": an HTTP client normalises it away before it is sent.)
IDS = ["x:transcodes", "a:b:c", "*", "x" * 500, "%2e%2e"]


async def run(ctx: Context) -> CheckResult:
    room = await ctx.room("names")
    failures, tried = [], 0
    async with ctx.http() as http:
        for name in NAMES:
            path = quote(name, safe="")
            for method, url, body in (
                ("GET", f"/api/rooms/{path}", None),
                ("POST", "/api/rooms", {"name": name}),
                ("GET", f"/api/rooms/{path}/participants", None),
                ("DELETE", f"/api/rooms/{path}", None),
            ):
                r = await http.request(method, url, json=body)
                tried += 1
                if r.status_code >= 500 or (r.status_code < 400 and name != ""):
                    failures.append(f"{method} {url[:40]}: {r.status_code}")
        for job_id in IDS:
            for coll in ("recordings", "egress", "injections"):
                r = await http.get(f"/api/rooms/{room}/{coll}/{quote(job_id, safe='')}")
                tried += 1
                if r.status_code >= 500 or r.status_code < 400:
                    failures.append(f"GET {coll}/{job_id[:20]}: {r.status_code}")
    tok = await ctx.token("names", room=room, room_join=True, room_admin=True)
    for name in NAMES[:5]:
        tried += 1
        try:
            url = f"{ctx.ws_url(quote(name, safe=''))}?access_token={tok}"
            async with ctx.raw_ws(url) as ws:
                await ws.send('{"id": 1, "method": "join", "data": {}}')
                reply = await ws.recv()
                if '"internal"' in str(reply) or '"ok": true' in str(reply):
                    failures.append(f"ws /ws/rooms/{name[:20]}: {str(reply)[:80]}")
        except (ConnectionClosed, InvalidStatus):
            pass  # refused: as it should be
    served = await ctx.served(room)
    if served:
        failures.append(served)
    if failures:
        return CheckResult(name=NAME, passed=False, detail="; ".join(failures[:6]))
    return CheckResult(name=NAME, passed=True, detail=f"{tried} odd names and ids: all 4xx")
