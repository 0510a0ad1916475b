"""Tokens that are validly signed but absurd (issue 17 item 11): a 10-year lifetime, a
token of many kilobytes. Refused by REST (401 with the reason) and by signaling (4401),
and a normal token still works afterwards."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest

from mediaplane.settings import Settings
from tests.support.control import ControlInstance, admin, ws_close

pytestmark = pytest.mark.integration


def _forged(settings: Settings, room: str, **extra: object) -> str:
    """Signed with the real API secret, but not made by mint_token (which caps the ttl)."""
    t = int(time.time())
    grants = {"room": room, "room_join": True, "room_create": True, "room_list": True}
    claims = {"iss": settings.api_key, "sub": "mallory", "iat": t, "nbf": t, "exp": t + 60,
              "jti": uuid.uuid4().hex, "grants": grants}  # fmt: skip
    return jwt.encode({**claims, **extra}, settings.secret("api_secret"), algorithm="HS256")


async def test_long_lived_and_oversized_tokens_are_refused_everywhere(
    settings: Settings, control: ControlInstance
) -> None:
    room = f"tok-{uuid.uuid4().hex[:6]}"
    decade = _forged(settings, room, exp=int(time.time()) + 10 * 365 * 86400)
    huge = _forged(settings, room, pad="x" * 3500)  # over the 4096-byte cap, under URL limits
    async with httpx.AsyncClient(base_url=control.http, timeout=10) as http:
        for tok, reason in ((decade, "lifetime"), (huge, "longer than")):
            r = await http.get("/api/rooms", headers={"Authorization": f"Bearer {tok}"})
            assert r.status_code == 401, r.text
            assert reason in r.text
            assert (await ws_close(f"{control.ws(room)}?access_token={tok}"))[0] == 4401
        r = await http.get("/api/rooms", headers={"Authorization": f"Bearer {admin(settings)}"})
        assert r.status_code == 200
