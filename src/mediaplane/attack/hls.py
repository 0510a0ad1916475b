"""HLS playlists and segments: not for a participant's, a room-only or a lister's token,
nor for a forged signed URL (403), nor with nothing (401)."""

from __future__ import annotations

from mediaplane.attack.context import Context
from mediaplane.attack.models import CheckResult

NAME = "HLS access"
EGRESS_ID = "0123456789abcdef"


async def run(ctx: Context) -> CheckResult:
    room = await ctx.room("hls")
    tokens = {
        "participant": await ctx.token("p", room=room, room_join=True),
        "room only": await ctx.token("r", room=room),
        "room_list": await ctx.token("l", room_list=True),
        "another room's viewer": await ctx.token("v", room=f"{room}-x", hls_view=True),
    }
    base = f"/api/rooms/{room}/egress/{EGRESS_ID}/hls"
    failures, tried = [], 0
    async with ctx.http(None) as http:
        for name in ("playlist.m3u8", "segment00000.ts"):
            for kind, tok in tokens.items():
                for how, kwargs in (
                    ("query", {"params": {"access_token": tok}}),
                    ("header", {"headers": {"Authorization": f"Bearer {tok}"}}),
                ):
                    r = await http.get(f"{base}/{name}", **kwargs)  # type: ignore[arg-type]
                    tried += 1
                    if r.status_code != 403:
                        failures.append(f"{name} with a {kind} token ({how}): {r.status_code}")
            forged: dict[str, int | str] = {"expires": 4102444800, "sig": "0" * 64}
            r = await http.get(f"{base}/{name}", params=forged)
            tried += 1
            if r.status_code != 403:
                failures.append(f"{name} with a forged signature: {r.status_code}")
            r = await http.get(f"{base}/{name}")
            tried += 1
            if r.status_code != 401:
                failures.append(f"{name} with nothing: {r.status_code}")
    served = await ctx.served(room)
    if served:
        failures.append(served)
    if failures:
        return CheckResult(name=NAME, passed=False, detail="; ".join(failures[:6]))
    return CheckResult(name=NAME, passed=True, detail=f"{tried} requests refused (403/401)")
