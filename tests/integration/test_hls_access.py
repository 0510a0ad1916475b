"""HLS access (issue 17 item 3): the playlist and segments of an HLS egress answered 200 to
any token naming the room (an open-join token, a `{"room": x}`-only token, a room_list
token) while the same token got 403 on the egress itself.

Now: a token with hls_view / room_record / room_admin for the room, or a signed URL
(GET .../hls-url: HMAC over room + egress id + expiry, inherited by the segments)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
import pytest

from mediaplane.control import hls_urls
from mediaplane.peer.signaling_client import SignalingClient
from tests.integration.test_egress import leave, publish, wait_egress
from tests.support.control import participant, token
from tests.support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_hls_needs_its_grant_or_a_signed_url(stack: Stack) -> None:
    settings = stack.settings
    room = f"hlsa-{uuid.uuid4().hex[:6]}"
    pub = await publish(stack, room, "bob")
    try:
        async with stack.http() as http:
            body = {"output": "hls", "width": 320, "height": 180, "fps": 10, "videoKbps": 300}
            r = await http.post(f"/api/rooms/{room}/egress", json=body)
            assert r.status_code == 202, r.text
            eg = r.json()
            base = f"/api/rooms/{room}/egress/{eg['id']}/hls"
            await wait_egress(http, room, eg["id"], lambda e: e["state"] == "running")
            async with (
                httpx.AsyncClient(base_url=stack.control.http, timeout=30) as player,
                asyncio.timeout(30),
            ):
                viewer = token(settings, "viewer", room=room, hls_view=True)
                while True:  # until the playlist lists a segment
                    r = await player.get(f"{base}/playlist.m3u8", params={"access_token": viewer})
                    if r.status_code == 200 and "segment" in r.text:
                        break
                    await asyncio.sleep(0.5)
                segment = re.search(r"segment[0-9]{5}\.ts", r.text)
                assert segment is not None
                seg = segment.group(0)

                wrong = {
                    "open-join": participant(settings, "guest-1a2b3c", room),
                    "room-only": token(settings, "nobody", room=room),
                    "room_list": token(settings, "lister", room_list=True),
                    "other room's viewer": token(settings, "v2", room="elsewhere", hls_view=True),
                }
                for kind, tok in wrong.items():
                    for name in ("playlist.m3u8", seg):
                        for how in ({"params": {"access_token": tok}},
                                    {"headers": {"authorization": f"Bearer {tok}"}}):  # fmt: skip
                            r = await player.get(f"{base}/{name}", **how)  # type: ignore[arg-type]
                            assert r.status_code == 403, (kind, name, r.text)
                            assert r.json()["error"]["code"] == "forbidden", r.text
                    # ... and none of them gets a signed URL either.
                    r = await player.get(
                        f"/api/rooms/{room}/egress/{eg['id']}/hls-url",
                        headers={"authorization": f"Bearer {tok}"},
                    )
                    assert r.status_code == 403, (kind, r.text)

                # The right grants are served; the segments carry a signature, not a token.
                recorder = token(settings, "rec", room=room, room_record=True)
                for tok in (viewer, recorder):
                    r = await player.get(
                        f"{base}/playlist.m3u8", headers={"authorization": f"Bearer {tok}"}
                    )
                    assert r.status_code == 200, r.text
                    uris = [x for x in r.text.splitlines() if x and not x.startswith("#")]
                    assert uris and all("sig=" in u and tok not in u for u in uris), uris
                    got = await player.get(f"{base}/{uris[0]}")
                    assert got.status_code == 200 and got.content[:1] == b"G", got.text[:200]

                # A signed URL: playlist and segments with nothing else.
                r = await player.get(
                    f"/api/rooms/{room}/egress/{eg['id']}/hls-url",
                    headers={"authorization": f"Bearer {viewer}"},
                )
                assert r.status_code == 200, r.text
                link = r.json()
                assert 0 < link["expires_at"] - time.time() <= settings.hls_url_ttl_s + 1
                assert "token" not in link["url"]
                r = await player.get(link["url"])
                assert r.status_code == 200, r.text
                uris = [x for x in r.text.splitlines() if x and not x.startswith("#")]
                assert (await player.get(f"{base}/{uris[0]}")).status_code == 200

                # Expired, forged, for another egress, half a signature: refused.
                secret = settings.secret("api_secret")
                past = int(time.time()) - 5
                other = uuid.uuid4().hex[:16]
                soon = int(time.time()) + 600
                egress_id = eg["id"]

                def signed(key: str, room_: str, egress: str, at: int) -> dict[str, object]:
                    return {"expires": at, "sig": hls_urls.sign(key, room_, egress, at)}

                bad = {
                    "expired": signed(secret, room, egress_id, past),
                    "forged": {"expires": soon, "sig": "0" * 64},
                    "other egress": signed(secret, room, other, soon),
                    "other room": signed(secret, "x", egress_id, soon),
                    "wrong key": signed("k" * 40, room, egress_id, soon),
                    "no expiry": {"sig": hls_urls.sign(secret, room, egress_id, soon)},
                }
                for kind, params in bad.items():
                    for name in ("playlist.m3u8", seg):
                        r = await player.get(f"{base}/{name}", params=params)
                        assert r.status_code == 403, (kind, name, r.text)
                        assert r.json()["error"]["code"] == "forbidden", r.text
                r = await player.get(f"{base}/playlist.m3u8")
                assert r.status_code == 401, r.text
            await http.post(f"/api/rooms/{room}/egress/{eg['id']}/stop")

        # A normal participant is still served.
        alice = await SignalingClient.connect(
            stack.control.ws(room), participant(settings, "alice", room)
        )
        joined = await alice.request("join", {"displayName": "Alice"})
        assert any(p["identity"] == "bob" for p in joined["peers"]), joined
        await alice.close()
    finally:
        await leave(pub)
