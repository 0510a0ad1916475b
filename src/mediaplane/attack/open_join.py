"""Open join: POST /api/dev/token must not mint a participant token for anyone
(MEDIAPLANE_OPEN_JOIN off, as on any deployment others reach)."""

from __future__ import annotations

import uuid

from mediaplane.attack.context import Context
from mediaplane.attack.models import CheckResult

NAME = "open join"


async def run(ctx: Context) -> CheckResult:
    async with ctx.http(None) as http:
        body = {"room": f"attack-open-{uuid.uuid4().hex[:6]}", "name": "stranger"}
        r = await http.post("/api/dev/token", json=body)
    if 200 <= r.status_code < 300:
        ctx.rooms.append(body["room"])
        return CheckResult(name=NAME, passed=False, detail="anyone gets a room_join token")
    return CheckResult(name=NAME, passed=r.status_code in (403, 404), detail=f"{r.status_code}")
