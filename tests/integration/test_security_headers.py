"""Headers a browser needs to keep the pages safe (issue 17 item 13), and metrics that a
client cannot grow with made-up HTTP methods."""

from __future__ import annotations

import httpx
import pytest

from mediaplane.control.security_headers import PAGE_CSP
from mediaplane.settings import Settings
from tests.support.control import ControlInstance, admin

pytestmark = pytest.mark.integration


async def test_pages_have_a_csp_and_refuse_framing_and_every_response_says_nosniff(
    settings: Settings, control: ControlInstance
) -> None:
    async with httpx.AsyncClient(base_url=control.http, timeout=10) as http:
        for page in ("/", "/admin"):
            r = await http.get(page)
            assert r.status_code == 200
            assert r.headers["content-security-policy"] == PAGE_CSP
            assert "frame-ancestors 'none'" in PAGE_CSP and "script-src 'self'" in PAGE_CSP
            assert r.headers["x-frame-options"] == "DENY"
        auth = {"Authorization": f"Bearer {admin(settings)}"}
        for path, headers in (("/api/rooms", auth), ("/api/rooms", {}), ("/static/call.js", {})):
            r = await http.get(path, headers=headers)
            assert r.status_code in (200, 401), (path, r.status_code)
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert r.headers["referrer-policy"] == "no-referrer", path


async def test_made_up_http_methods_add_no_metric_series(control: ControlInstance) -> None:
    async with httpx.AsyncClient(base_url=control.http, timeout=10) as http:
        for method in ("PROPFIND", "MKCOL", "X-ANYTHING-1", "X-ANYTHING-2"):
            await http.request(method, "/api/rooms")
        text = (await http.get("/metrics")).text
    series = [line for line in text.splitlines() if line.startswith("mediaplane_control_http")]
    assert not [s for s in series if "PROPFIND" in s or "MKCOL" in s or "X-ANYTHING" in s]
    assert any('method="<other>"' in s for s in series)
