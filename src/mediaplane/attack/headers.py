"""Headers: the pages send a CSP, X-Frame-Options and nosniff; an unknown HTTP method
is refused without a server error."""

from __future__ import annotations

from mediaplane.attack.context import Context
from mediaplane.attack.models import CheckResult

NAME = "headers"


async def run(ctx: Context) -> CheckResult:
    failures = []
    async with ctx.http(None) as http:
        for page in ("/", "/admin"):
            r = await http.get(page)
            h = r.headers
            if "frame-ancestors" not in h.get("content-security-policy", ""):
                failures.append(f"{page}: no CSP frame-ancestors")
            if h.get("x-frame-options", "").upper() != "DENY":
                failures.append(f"{page}: X-Frame-Options {h.get('x-frame-options')!r}")
            if h.get("x-content-type-options") != "nosniff":
                failures.append(f"{page}: no nosniff")
        for method in ("PROPFIND", "MKCOL", "TRACE"):
            r = await http.request(method, "/api/rooms")
            if r.status_code >= 500 or r.status_code < 400:
                failures.append(f"{method} /api/rooms: {r.status_code}")
    if failures:
        return CheckResult(name=NAME, passed=False, detail="; ".join(failures))
    return CheckResult(
        name=NAME, passed=True, detail="CSP, X-Frame-Options DENY, nosniff; odd methods 4xx"
    )
