"""URLs the server would connect to (injection sources, RTMP egress targets) that name
its own loopback in 14 spellings are refused alike: one status and one message, so the
reply tells nothing about what listens behind the port."""

from __future__ import annotations

from mediaplane.attack.context import Context
from mediaplane.attack.models import CheckResult

NAME = "SSRF URLs"
PORTS = (6379, 4443, 8090, 1)  # Redis, the SFU's RPC, the media manager, a closed one
FORMS = [
    "127.0.0.1", "localhost", "127.1", "0x7f000001", "2130706433", "0177.0.0.1",
    "0x7f.0.0.1", "127.0.0.2", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
    "0.0.0.0", "[::]", "media.localhost",
]  # fmt: skip
EGRESS = {"output": "rtmp", "audioOnly": True, "width": 320, "height": 180, "fps": 10}


async def run(ctx: Context) -> CheckResult:
    room = await ctx.room("ssrf")
    replies: dict[str, set[tuple[int, str]]] = {"injection": set(), "egress": set()}
    tried = 0
    async with ctx.http() as http:
        for port in PORTS:
            for host in FORMS:
                for scheme in ("http", "rtsp", "rtmp"):
                    url = f"{scheme}://{host}:{port}/live/x.mp4"
                    body = {"source": url, "video": False}
                    r = await http.post(f"/api/rooms/{room}/injections", json=body)
                    replies["injection"].add((r.status_code, _message(r.json())))
                    tried += 1
                url = f"rtmp://{host}:{port}/live/x"
                r = await http.post(f"/api/rooms/{room}/egress", json={**EGRESS, "rtmpUrl": url})
                replies["egress"].add((r.status_code, _message(r.json())))
                tried += 1
    ok = all(len(v) == 1 and next(iter(v))[0] == 400 for v in replies.values())
    served = await ctx.served(room)
    detail = f"{len(FORMS)} loopback forms x {len(PORTS)} ports: {tried} requests, " + ", ".join(
        f"{route} {sorted({code for code, _ in v})} with {len(v)} message(s)"
        for route, v in replies.items()
    )
    if not ok:
        detail += "; replies: " + "; ".join(m[:80] for v in replies.values() for _, m in v)
    if served:
        detail += f"; {served}"
    return CheckResult(name=NAME, passed=ok and served is None, detail=detail)


def _message(body: object) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))
    return str(body)[:200]
