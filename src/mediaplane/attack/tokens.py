"""Token lifetime and size: no token is minted for years, and a huge token is refused
(401/4xx) without a server error."""

from __future__ import annotations

from mediaplane.attack.context import Context
from mediaplane.attack.models import CheckResult

NAME = "token lifetime and size"
TEN_YEARS_S = 10 * 365 * 86400


async def run(ctx: Context) -> CheckResult:
    failures = []
    async with ctx.http() as http:
        body = {"identity": "long", "grants": {"room_list": True}, "ttl_s": TEN_YEARS_S}
        r = await http.post("/api/tokens", json=body)
        if r.status_code < 400 or r.status_code >= 500:
            failures.append(f"a 10-year token minted: {r.status_code}")
    async with ctx.http(None) as http:
        for size in (5000, 64 * 1024, 1 << 20):
            fake = "e" + "x" * (size - 1)
            try:
                r = await http.get("/api/rooms", headers={"Authorization": f"Bearer {fake}"})
                code = r.status_code
            except Exception as e:  # the server may drop a 1 MB header line: fine
                code = 0
                why = type(e).__name__
                if "Protocol" not in why and "Disconnect" not in why and "Read" not in why:
                    failures.append(f"a {size}-byte token: {why}")
                continue
            if not 400 <= code < 500:
                failures.append(f"a {size}-byte token: {code}")
            r = await http.get("/api/rooms", params={"access_token": fake[:5000]})
            if not 400 <= r.status_code < 500:
                failures.append(f"a 5000-byte query token: {r.status_code}")
    room = await ctx.room("tokens")
    served = await ctx.served(room)
    if served:
        failures.append(served)
    if failures:
        return CheckResult(name=NAME, passed=False, detail="; ".join(failures))
    return CheckResult(
        name=NAME, passed=True, detail="10-year ttl refused; 5 KB, 64 KB, 1 MB tokens refused"
    )
