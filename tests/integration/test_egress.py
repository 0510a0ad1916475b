"""Egress with everything real: aiortc publishers in a room, the SFU, the control plane, the
media manager's composite, nginx-rtmp; every output decoded."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.peer import MediasoupPeer, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.peer.tracks import ColorVideoTrack
from mediaplane.state.redis_server import free_tcp_port
from tests.support.control import participant, token
from tests.support.mediacheck import (
    band_energy_ratio,
    decode_audio,
    decode_frame,
    dominant_color,
    dominant_frequency,
    probe_streams,
)
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)

PEOPLE = {"alice": (330.0, 0xFF0000), "bob": (660.0, 0x00FF00), "carol": (990.0, 0x0000FF)}
Publisher = tuple[SignalingClient, MediasoupPeer]


async def publish(stack: Stack, room: str, who: str) -> Publisher:
    tone, color = PEOPLE[who]
    sig = await SignalingClient.connect(
        stack.control.ws(room), participant(stack.settings, who, room)
    )
    joined = await sig.request("join", {"displayName": who.title()})
    peer = MediasoupPeer(sig, joined["routerRtpCapabilities"])
    await peer.publish(ToneTrack(freq=tone))
    await peer.publish(ColorVideoTrack(color))
    return sig, peer


async def leave(pub: Publisher) -> None:
    await pub[1].close()
    await pub[0].close()


async def wait_egress(
    http: httpx.AsyncClient, room: str, egress_id: str, pred: Any, timeout: float = 20
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            rec: dict[str, Any] = (await http.get(f"/api/rooms/{room}/egress/{egress_id}")).json()
            if pred(rec):
                return rec
            await asyncio.sleep(0.2)


@pytest.fixture
async def nginx(tmp_path: Path) -> AsyncIterator[NginxRtmp]:
    server = await NginxRtmp.start(tmp_path / "nginx")
    try:
        yield server
    finally:
        await server.stop()


async def test_room_composite_file_follows_joins(stack: Stack, tmp_path: Path) -> None:
    room = f"eg-{uuid.uuid4().hex[:6]}"
    pubs = [await publish(stack, room, "alice"), await publish(stack, room, "bob")]
    body = {"output": "file", "format": "mp4", "width": 640, "height": 360, "fps": 15,
            "videoKbps": 800}  # fmt: skip
    try:
        async with stack.http() as http:
            r = await http.post(f"/api/rooms/{room}/egress", json=body)
            assert r.status_code == 202, r.text
            eg = r.json()
            eg = await wait_egress(http, room, eg["id"], lambda e: e["state"] == "running")
            assert len(eg["tracks"]) == 4, eg
            pubs.append(await publish(stack, room, "carol"))  # a newcomer gets a tile
            await wait_egress(http, room, eg["id"], lambda e: len(e["tracks"]) == 6)
            t_three = time.monotonic()
            await asyncio.sleep(5)
            await leave(pubs.pop(1))  # bob leaves: his tile and his voice go
            await wait_egress(http, room, eg["id"], lambda e: len(e["tracks"]) == 4)
            t_two = time.monotonic()
            await asyncio.sleep(5)
            t_stop = time.monotonic()
            done = (await http.post(f"/api/rooms/{room}/egress/{eg['id']}/stop")).json()
            assert done["state"] == "completed", done
            got = await http.get(f"/api/rooms/{room}/egress/{eg['id']}/file")
            assert got.status_code == 200, got.text
            out = tmp_path / "room.mp4"
            out.write_bytes(got.content)
            again = await http.post(f"/api/rooms/{room}/egress/{eg['id']}/stop")
            assert again.status_code == 409
    finally:
        for pub in pubs:
            await leave(pub)
    streams = {s.codec_type: s for s in probe_streams(out, count_frames=True)}
    assert streams["video"].codec_name == "h264" and streams["audio"].codec_name == "aac"
    duration = streams["audio"].duration or 0.0

    def file_time(t: float) -> float:  # the file ends where the stop was asked
        return duration - (t_stop - t)

    three = decode_frame(out, file_time(t_three + 3.0), 640, 360)
    tiles = sorted(dominant_color(three, x, y) for x, y in ((160, 90), (480, 90), (320, 270)))
    assert tiles == ["blue", "green", "red"], tiles
    assert dominant_color(three, 20, 340) == "black"
    # After bob left: two tiles side by side, alice (joined first) then carol.
    two = decode_frame(out, file_time(t_two + 3.0), 640, 360)
    tiles2 = [dominant_color(two, x, 180) for x in (160, 480)]
    assert tiles2 == ["red", "blue"], tiles2
    pcm = decode_audio(out)

    def shares_at(t0: float, t1: float) -> dict[str, float]:
        cut = pcm[int(file_time(t0) * 48000) : int(file_time(t1) * 48000)]
        return {who: band_energy_ratio(cut, 48000, tone) for who, (tone, _) in PEOPLE.items()}

    with_bob, without = shares_at(t_three + 1.0, t_three + 4.0), shares_at(t_two + 1.5, t_stop - 1)
    assert all(v > 0.1 for v in with_bob.values()), with_bob
    assert without["bob"] < 0.02 and without["alice"] > 0.2 and without["carol"] > 0.2, without
    log.info(
        "measured: room composite via SFU %.3f s, %s frames, tiles %s then %s after a leave, "
        "tone shares %s then %s",
        duration, streams["video"].frames, tiles, tiles2,
        {k: round(v, 2) for k, v in with_bob.items()}, {k: round(v, 2) for k, v in without.items()},
    )  # fmt: skip
    await stack.hooks.wait_for("egress.finished", lambda d: d["id"] == eg["id"])


async def test_participant_to_rtmp_and_unreachable_server(stack: Stack, nginx: NginxRtmp) -> None:
    room = f"eg-{uuid.uuid4().hex[:6]}"
    pub = await publish(stack, room, "alice")
    try:
        async with stack.http() as http:
            body = {"source": "participant", "identity": "alice", "output": "rtmp",
                    "rtmpUrl": nginx.url("alice-secret-key"), "width": 640, "height": 360,
                    "fps": 15, "videoKbps": 800}  # fmt: skip
            r = await http.post(f"/api/rooms/{room}/egress", json=body)
            assert r.status_code == 202, r.text
            eg = r.json()
            assert "secret-key" not in r.text, "the stream key must not be echoed"
            eg = await wait_egress(http, room, eg["id"], lambda e: e["state"] == "running")
            await asyncio.sleep(6)
            done = (await http.post(f"/api/rooms/{room}/egress/{eg['id']}/stop")).json()
            assert done["state"] == "completed", done
            span = done["stopped_at"] - done["started_at"]

            closed = f"rtmp://127.0.0.1:{free_tcp_port()}/live/x"
            r = await http.post(f"/api/rooms/{room}/egress", json={**body, "rtmpUrl": closed})
            assert r.status_code == 202, r.text
            # Refused before or after the reply: either way the egress ends failed.
            failed = await wait_egress(
                http, room, r.json()["id"], lambda e: e["state"] in ("failed", "completed"), 15
            )
    finally:
        await leave(pub)
    assert failed["state"] == "failed", failed
    assert "refused" in failed["error"].lower(), failed["error"]
    flv = await nginx.wait_recorded("alice-secret-key")
    streams = {s.codec_type: s for s in probe_streams(flv)}
    assert (streams["video"].codec_name, streams["audio"].codec_name) == ("h264", "aac")
    duration = streams["audio"].duration or 0.0
    assert abs(duration - span) < 1.5, (duration, span)
    freq = dominant_frequency(decode_audio(flv)[48000 : 48000 * 4], 48000)
    assert abs(freq - 330.0) < 3, freq
    # The picture is alice's (red), decoded from what nginx received.
    picture = decode_frame(flv, 3.0, 640, 360)
    assert dominant_color(picture, 320, 180) == "red"
    log.info(
        "measured: participant egress on nginx %.3f s for a %.3f s span, %.2f Hz; "
        "closed port: %s",
        duration, span, freq, failed["error"][:100],
    )  # fmt: skip


async def test_hls_served_by_the_control_plane(stack: Stack, tmp_path: Path) -> None:
    room = f"eg-{uuid.uuid4().hex[:6]}"
    pub = await publish(stack, room, "bob")
    viewer = token(stack.settings, "viewer", room=room, hls_view=True)
    try:
        async with stack.http() as http:
            body = {"output": "hls", "width": 640, "height": 360, "fps": 15, "videoKbps": 800}
            r = await http.post(f"/api/rooms/{room}/egress", json=body)
            assert r.status_code == 202, r.text
            eg = r.json()
            base = f"/api/rooms/{room}/egress/{eg['id']}/hls"
            await wait_egress(http, room, eg["id"], lambda e: e["state"] == "running")
            await asyncio.sleep(7)
            async with httpx.AsyncClient(base_url=stack.control.http, timeout=30) as player:
                assert (await player.get(f"{base}/playlist.m3u8")).status_code == 401
                playlist = await player.get(
                    f"{base}/playlist.m3u8", params={"access_token": viewer}
                )
                assert playlist.status_code == 200, playlist.text
                assert "mpegurl" in playlist.headers["content-type"]
                uris = [x for x in playlist.text.splitlines() if x and not x.startswith("#")]
                assert len(uris) >= 2, playlist.text
                # The segments carry a signature, never the token (docs/security.md).
                assert all("sig=" in u and "access_token" not in u for u in uris), uris
                ts = b""
                for uri in uris:
                    seg = await player.get(f"{base}/{uri}")
                    assert seg.status_code == 200
                    ts += seg.content
                bad = await player.get(f"{base}/..%2Fsecret", params={"access_token": viewer})
                assert bad.status_code in (404, 422)
            await http.post(f"/api/rooms/{room}/egress/{eg['id']}/stop")
    finally:
        await leave(pub)
    out = tmp_path / "hls.ts"
    out.write_bytes(ts)
    streams = {s.codec_type: s for s in probe_streams(out)}
    assert (streams["video"].codec_name, streams["audio"].codec_name) == ("h264", "aac")
    pcm = decode_audio(out)
    freq = dominant_frequency(pcm[48000 : 48000 * 3], 48000)
    assert abs(freq - 660.0) < 3, freq
    log.info("measured: HLS %d segments via the control plane, %.2f s decoded, %.2f Hz",
             len(uris), len(pcm) / 48000, freq)  # fmt: skip


async def test_hls_live_window(stack: Stack, tmp_path: Path) -> None:
    """hlsWindow 3: a live playlist of the last 3 segments (its media sequence moving on),
    older segments deleted from disk (4 kept for late players) and gone from HTTP, the
    listed ones decoding to the participant's tone."""
    room = f"eg-{uuid.uuid4().hex[:6]}"
    pub = await publish(stack, room, "bob")
    viewer = token(stack.settings, "viewer", room=room, hls_view=True)
    try:
        async with stack.http() as http:
            body = {"output": "hls", "hlsWindow": 3, "width": 640, "height": 360, "fps": 15,
                    "videoKbps": 800}  # fmt: skip
            r = await http.post(f"/api/rooms/{room}/egress", json=body)
            assert r.status_code == 202, r.text
            eg = r.json()
            assert eg["hls_window"] == 3, eg
            base = f"/api/rooms/{room}/egress/{eg['id']}/hls"
            async with (
                httpx.AsyncClient(
                    base_url=stack.control.http, params={"access_token": viewer}, timeout=30
                ) as player,
                asyncio.timeout(60),
            ):
                while True:  # until the window has slid 5 segments on
                    playlist = await player.get(f"{base}/playlist.m3u8")
                    if playlist.status_code == 200:
                        text = playlist.text
                        sequence = int(text.split("#EXT-X-MEDIA-SEQUENCE:")[1].split()[0])
                        if sequence >= 5:
                            break
                    await asyncio.sleep(0.5)
                uris = [x for x in text.splitlines() if x and not x.startswith("#")]
                assert len(uris) == 3, text
                assert "#EXT-X-ENDLIST" not in text, text
                folder = (
                    stack.media.root
                    / (await http.get(f"/api/rooms/{room}/egress/{eg['id']}")).json()["hls_folder"]
                )
                on_disk = sorted(x.name for x in folder.glob("segment*.ts"))
                first = await player.get(f"{base}/segment00000.ts")
                ts = b""
                for uri in uris:
                    seg = await player.get(f"{base}/{uri}")
                    assert seg.status_code == 200, (uri, seg.text)
                    ts += seg.content
            await http.post(f"/api/rooms/{room}/egress/{eg['id']}/stop")
    finally:
        await leave(pub)
    assert first.status_code == 404, first.text
    # RFC 8216 6.2.2: a segment that left the playlist stays for its length plus the
    # playlist's (2 s + 3 x 2 s): the 4 before the window are still there, older ones not.
    kept = [f"segment{n:05d}.ts" for n in range(sequence - 4, sequence + 3)]
    assert set(kept) <= set(on_disk), (kept, on_disk)
    assert f"segment{sequence - 5:05d}.ts" not in on_disk, on_disk
    assert len(on_disk) <= len(kept) + 1, on_disk  # and the one being written
    out = tmp_path / "window.ts"
    out.write_bytes(ts)
    streams = {s.codec_type: s for s in probe_streams(out)}
    assert (streams["video"].codec_name, streams["audio"].codec_name) == ("h264", "aac")
    pcm = decode_audio(out)
    freq = dominant_frequency(pcm[: 48000 * 2], 48000)
    log.info(
        "measured: HLS live window: media sequence %d, playlist %s, on disk %s, "
        "first segment %d, %.2f s decoded, %.2f Hz",
        sequence, [u.split("?")[0] for u in uris], on_disk, first.status_code,
        len(pcm) / 48000, freq,
    )  # fmt: skip
    assert len(pcm) / 48000 > 3.0, len(pcm)
    assert abs(freq - 660.0) < 3, freq


async def test_egress_refusals(stack: Stack) -> None:
    room = f"eg-{uuid.uuid4().hex[:6]}"
    pub = await publish(stack, room, "alice")
    try:
        async with stack.http() as http:
            url = f"/api/rooms/{room}/egress"
            cases = [
                ({"output": "rtmp"}, 422),
                ({"output": "rtmp", "rtmpUrl": "http://example.com/x"}, 422),
                ({"output": "file", "rtmpUrl": "rtmp://127.0.0.1/x"}, 422),
                ({"source": "participant"}, 422),
                ({"source": "participant", "identity": "nobody"}, 404),
                ({"width": 7}, 422),
                ({"format": "avi"}, 422),
                ({"output": "rtmp", "rtmpUrl": "rtmp://h:99999/live/k"}, 422),
                ({"output": "rtmp", "rtmpUrl": "rtmp:///live/k"}, 422),
                ({"output": "hls", "hlsWindow": 2}, 422),  # a live playlist needs 3 or more
                ({"output": "file", "hlsWindow": 5}, 422),
                ({"output": "hls", "hlsWindow": -1}, 422),
                # 1080p60 costs 190 units, over the media manager's budget of 100.
                ({"width": 1920, "height": 1080, "fps": 60}, 429),
            ]
            for body, code in cases:
                r = await http.post(url, json=body)
                assert r.status_code == code, (body, r.status_code, r.text)
                assert r.json()["error"]["message"], r.text
            assert (await http.get(url)).json() == []  # no refusal left an egress behind
            assert (await http.post("/api/rooms/nope-x/egress", json={})).status_code == 404
            assert (await http.get(f"{url}/0123456789abcdef")).status_code == 404
            assert (await http.post(f"{url}/0123456789abcdef/stop")).status_code == 404
        plain = participant(stack.settings, "mallory", room)
        async with stack.http(plain) as http:
            assert (await http.post(f"/api/rooms/{room}/egress", json={})).status_code == 403
    finally:
        await leave(pub)
