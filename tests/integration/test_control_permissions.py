"""Every refusal has its code: tokens, grants, REST and signaling."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from mediaplane.control.auth import Grants, mint_token
from mediaplane.peer import MediasoupPeer, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient, SignalingReplyError
from mediaplane.settings import Settings
from tests.support.control import ControlInstance, admin, participant, token, ws_close

pytestmark = pytest.mark.integration


async def test_signaling_refuses_missing_expired_and_foreign_tokens(
    settings: Settings, control: ControlInstance
) -> None:
    room = f"perm-{uuid.uuid4().hex[:6]}"
    assert (await ws_close(control.ws(room)))[0] == 4401
    assert (await ws_close(control.ws(room) + "?access_token=garbage"))[0] == 4401
    expired = mint_token(
        api_key=settings.api_key,
        api_secret=settings.secret("api_secret"),
        identity="late",
        grants=Grants(room=room, room_join=True),
        ttl_s=60,
        now=time.time() - 3600,
    )
    assert (await ws_close(control.ws(room) + f"?access_token={expired}"))[0] == 4401
    other = participant(settings, "mallory", "another-room")
    assert (await ws_close(control.ws(room) + f"?access_token={other}"))[0] == 4403
    forged = mint_token(
        api_key=settings.api_key,
        api_secret="not-the-secret-" + "x" * 20,
        identity="forger",
        grants=Grants(room=room, room_join=True),
    )
    assert (await ws_close(control.ws(room) + f"?access_token={forged}"))[0] == 4401


async def test_signaling_grants_are_enforced(settings: Settings, control: ControlInstance) -> None:
    room = f"perm-{uuid.uuid4().hex[:6]}"
    # A token for the room without room_join cannot join.
    viewer = await SignalingClient.connect(control.ws(room), token(settings, "v", room=room))
    with pytest.raises(SignalingReplyError) as info:
        await viewer.request("join")
    assert info.value.code == "forbidden"
    await viewer.close()

    # Subscribe-only: joining works, publishing is refused.
    sub_only = participant(settings, "listener", room, can_publish=False)
    sig = await SignalingClient.connect(control.ws(room), sub_only)
    await sig.request("join")
    with pytest.raises(SignalingReplyError) as info:
        await sig.request("createTransport", {"direction": "send"})
    assert info.value.code == "forbidden"
    await sig.request("createTransport", {"direction": "recv"})
    await sig.close()

    # Audio-only publisher: video is refused at produce.
    audio_only = participant(settings, "speaker", room, can_publish_sources=["audio"])
    sig = await SignalingClient.connect(control.ws(room), audio_only)
    joined = await sig.request("join")
    peer = MediasoupPeer(sig, joined["routerRtpCapabilities"])
    await peer.publish(ToneTrack())
    t = peer.send_transport_id
    with pytest.raises(SignalingReplyError) as info:
        await sig.request(
            "produce",
            {"transportId": t, "kind": "video", "rtpParameters": {}, "source": "screen"},
        )
    assert info.value.code == "forbidden"
    await peer.close()
    await sig.close()


async def test_rest_requires_tokens_and_admin_grants(
    settings: Settings, control: ControlInstance
) -> None:
    room = f"perm-{uuid.uuid4().hex[:6]}"
    user = participant(settings, "user", room)
    async with httpx.AsyncClient(base_url=control.http) as http:
        r = await http.get("/api/rooms")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = await http.get("/api/rooms", headers={"Authorization": "Bearer nonsense"})
        assert r.status_code == 401
        auth = {"Authorization": f"Bearer {user}"}
        r = await http.post("/api/rooms", json={"name": room}, headers=auth)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        r = await http.get("/api/rooms", headers=auth)
        assert r.status_code == 403
        r = await http.get(f"/api/rooms/{room}/participants", headers=auth)
        assert r.status_code == 403
        r = await http.delete(f"/api/rooms/{room}/participants/x", headers=auth)
        assert r.status_code == 403
        r = await http.post("/api/tokens", json={"identity": "x", "grants": {}}, headers=auth)
        assert r.status_code == 403
        other = {"Authorization": f"Bearer {participant(settings, 'u2', 'elsewhere')}"}
        r = await http.get(f"/api/rooms/{room}", headers=other)
        assert r.status_code == 403


async def test_rest_room_admin_flow(settings: Settings, control: ControlInstance) -> None:
    room = f"admin-{uuid.uuid4().hex[:6]}"
    auth = {"Authorization": f"Bearer {admin(settings)}"}
    async with httpx.AsyncClient(base_url=control.http, headers=auth) as http:
        r = await http.post("/api/rooms", json={"name": room, "max_participants": 2})
        assert r.status_code == 201, r.text
        assert (await http.post("/api/rooms", json={"name": room})).status_code == 409
        bad = await http.post("/api/rooms", json={"name": "../etc"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
        assert (await http.get("/api/rooms/nope-404")).status_code == 404
        r = await http.patch(f"/api/rooms/{room}", json={"metadata": "hello"})
        assert r.json()["metadata"] == "hello"
        r = await http.post(
            "/api/tokens",
            json={"identity": "alice", "grants": {"room": room, "room_join": True}},
        )
        alice_token = r.json()["token"]

        sig_a = await SignalingClient.connect(control.ws(room), alice_token)
        joined = await sig_a.request("join")
        peer = MediasoupPeer(sig_a, joined["routerRtpCapabilities"])
        producer_id = await peer.publish(ToneTrack())
        sig_b = await SignalingClient.connect(control.ws(room), participant(settings, "bob", room))
        await sig_b.request("join")
        sig_c = await SignalingClient.connect(control.ws(room), participant(settings, "carl", room))
        with pytest.raises(SignalingReplyError) as info:
            await sig_c.request("join")
        assert info.value.code == "room_full"
        await sig_c.close()

        people = (await http.get(f"/api/rooms/{room}/participants")).json()
        assert {p["identity"] for p in people} == {"alice", "bob"}
        alice = next(p for p in people if p["identity"] == "alice")
        assert alice["tracks"][0]["producerId"] == producer_id
        assert "stats" not in alice["tracks"][0]  # only when asked for

        # Live stats, per participant or in one snapshot of every room (the dashboard's view).
        async with asyncio.timeout(10):
            while True:
                r = await http.get(f"/api/rooms/{room}/participants", params={"stats": "true"})
                stats = next(p for p in r.json() if p["identity"] == "alice")["tracks"][0]["stats"]
                if stats["packetCount"] > 0 and stats["bitrate"] > 0:
                    break
                await asyncio.sleep(0.25)
        plain = next(x for x in (await http.get("/api/rooms")).json() if x["name"] == room)
        assert "participants" not in plain
        r = await http.get("/api/rooms", params={"expand": "stats"})
        listed = next(x for x in r.json() if x["name"] == room)
        assert {p["identity"] for p in listed["participants"]} == {"alice", "bob"}
        snap = next(p for p in listed["participants"] if p["identity"] == "alice")["tracks"][0]
        assert snap["producerId"] == producer_id and snap["stats"]["packetCount"] > 0, snap
        assert (await http.get("/api/rooms", params={"expand": "everything"})).status_code == 422
        r = await http.post("/api/tokens", json={"identity": "ops", "grants": {"room_list": True}})
        lister = {"Authorization": f"Bearer {r.json()['token']}"}
        assert (
            await http.get("/api/rooms", params={"expand": "participants"}, headers=lister)
        ).status_code == 200
        # Stats only where the caller administers: a lister gets the rooms without them.
        r = await http.get("/api/rooms", params={"expand": "stats"}, headers=lister)
        assert r.status_code == 200, r.text
        mine = next(x for x in r.json() if x["name"] == room)
        assert {p["identity"] for p in mine["participants"]} == {"alice", "bob"}
        assert all("stats" not in t for p in mine["participants"] for t in p["tracks"]), mine
        r = await http.get(f"/api/rooms/{room}/participants?stats=true", headers=lister)
        assert r.status_code == 403 and "room_admin" in r.json()["error"]["message"], r.text
        both = await http.get(
            "/api/rooms", params=[("expand", "participants"), ("expand", "stats")]
        )
        people = next(x for x in both.json() if x["name"] == room)["participants"]
        alice_tracks = next(p for p in people if p["identity"] == "alice")["tracks"]
        assert alice_tracks[0]["stats"]["packetCount"] > 0, alice_tracks
        created = (await http.get(f"/api/rooms/{room}")).json()
        assert "participants" not in created, created  # only the listing expands

        r = await http.post(
            f"/api/rooms/{room}/participants/alice/tracks/{producer_id}/mute", json={"muted": True}
        )
        assert r.status_code == 200 and r.json()["paused"] is True
        ev = await sig_b.wait_event("producerPaused", lambda d: d["producerId"] == producer_id)
        assert ev["byAdmin"] is True
        r = await http.post(
            f"/api/rooms/{room}/participants/bob/tracks/{producer_id}/mute", json={"muted": True}
        )
        assert r.status_code == 404

        r = await http.put(
            f"/api/rooms/{room}/participants/alice/grants",
            json={"grants": {"room_join": True, "can_publish": False}},
        )
        assert r.status_code == 204
        await sig_a.wait_event("permissionsUpdated")
        await sig_b.wait_event("producerClosed", lambda d: d["producerId"] == producer_id)

        r = await http.delete(f"/api/rooms/{room}/participants/bob")
        assert r.status_code == 204
        assert await sig_b.wait_closed() == 4003
        assert (await http.delete(f"/api/rooms/{room}/participants/bob")).status_code == 404

        r = await http.delete(f"/api/rooms/{room}")
        assert r.status_code == 204
        assert await sig_a.wait_closed() == 4004
        assert (await http.get(f"/api/rooms/{room}")).status_code == 404
        await peer.close()
        assert (await http.get("/readyz")).json()["status"] == "ready"
