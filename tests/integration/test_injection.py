"""Injection with everything real: a file or a URL played by the media manager into the SFU,
announced by the control plane as a participant, received by an aiortc peer in the room and
checked by decoded content (tone frequency by FFT, colour bars, frame counts)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc.mediastreams import MediaStreamTrack

from mediaplane.peer import MediasoupPeer
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.state.redis_server import free_tcp_port
from tests.support.control import participant, token
from tests.support.mediacheck import collect_track_audio, dominant_color, dominant_frequency, rms
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.sources import (
    FPS,
    SIZE,
    TONE_HZ,
    HttpFiles,
    make_av_file,
    make_hls,
    publish_rtmp,
    rtsp_server_available,
    silent_tcp_server,
    start_rtsp_server,
)
from tests.support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)

# SMPTE bars (top two thirds, 7 bars): green is the 4th, red the 6th, blue the 7th.
BARS = {"green": 3.5, "red": 5.5, "blue": 6.5}
Viewer = tuple[SignalingClient, MediasoupPeer]


async def join(stack: Stack, room: str, who: str = "viewer") -> Viewer:
    sig = await SignalingClient.connect(
        stack.control.ws(room), participant(stack.settings, who, room)
    )
    joined = await sig.request("join", {"displayName": who})
    return sig, MediasoupPeer(sig, joined["routerRtpCapabilities"])


async def leave(viewer: Viewer) -> None:
    await viewer[1].close()
    await viewer[0].close()


async def wait_injection(
    http: httpx.AsyncClient, room: str, ident: str, pred: Any, timeout: float = 20
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            rec: dict[str, Any] = (await http.get(f"/api/rooms/{room}/injections/{ident}")).json()
            if pred(rec):
                return rec
            await asyncio.sleep(0.2)


async def receive(
    http: httpx.AsyncClient, viewer: Viewer, rec: dict[str, Any], kinds: tuple[str, ...]
) -> dict[str, Any]:
    """The injection as the viewer sees it: peerJoined, then newProducer per kind; subscribed."""
    sig, peer = viewer
    tracks: dict[str, Any] = {}
    try:
        joined = await sig.wait_event("peerJoined", lambda d: d["peer"]["peerId"] == rec["peer_id"])
        for kind in kinds:
            event = await sig.wait_event(
                "newProducer",
                lambda d, k=kind: d["peerId"] == rec["peer_id"] and d["kind"] == k,
                timeout=20,
            )
            _, tracks[kind] = await peer.subscribe(event["producerId"])
    except TimeoutError:
        now = (await http.get(f"/api/rooms/{rec['room']}/injections/{rec['id']}")).json()
        raise AssertionError(f"the viewer did not get the injection's tracks: {now}") from None
    assert joined["peer"]["identity"] == rec["identity"]
    assert joined["peer"]["kind"] == "ingress"
    return tracks


async def collect_video(track: MediaStreamTrack, seconds: float) -> tuple[int, float, list[Any]]:
    """Frames decoded in `seconds` after the first: (count, fps by their timestamps, some RGB)."""
    first = await asyncio.wait_for(track.recv(), 20)
    frames, samples, pts = 1, [], [float(first.pts * first.time_base)]  # type: ignore[attr-defined]
    start = time.monotonic()
    async with asyncio.timeout(seconds + 20):
        while time.monotonic() - start < seconds or not samples:
            frame = await track.recv()
            frames += 1
            pts.append(float(frame.pts * frame.time_base))  # type: ignore[attr-defined]
            if frames % 15 == 0:
                samples.append(frame.to_ndarray(format="rgb24"))  # type: ignore[attr-defined]
    span = pts[-1] - pts[0]
    fps = (len(pts) - 1) / span if span > 0 else 0.0
    gap = max(b - a for a, b in itertools.pairwise(pts)) if len(pts) > 1 else 0.0
    assert gap < 0.25, f"a {gap:.2f} s hole in the video timestamps"
    return frames, fps, samples


async def collect_av(tracks: dict[str, Any], seconds: float) -> tuple[Any, int, float, list[Any]]:
    """Audio PCM and video frames received at the same time (neither queue backs up)."""
    pcm, (frames, fps, samples) = await asyncio.gather(
        collect_track_audio(tracks["audio"], seconds), collect_video(tracks["video"], seconds)
    )
    return pcm, frames, fps, samples


def bar_colours(rgb: Any) -> dict[str, str]:
    h, w = rgb.shape[:2]
    return {name: dominant_color(rgb, int(w * x / 7), h // 3) for name, x in BARS.items()}


def tone_of(pcm: Any) -> float:
    return dominant_frequency(pcm[len(pcm) // 4 :], 48000)


@pytest.fixture
async def nginx(tmp_path: Path) -> AsyncIterator[NginxRtmp]:
    server = await NginxRtmp.start(tmp_path / "nginx")
    try:
        yield server
    finally:
        await server.stop()


async def test_file_injected_heard_and_seen(stack: Stack) -> None:
    room = f"inj-{uuid.uuid4().hex[:6]}"
    make_av_file(stack.media.root / "inject" / f"{room}.mp4", seconds=8.0)
    viewer = await join(stack, room)
    try:
        async with stack.http() as http:
            t0 = time.monotonic()
            r = await http.post(
                f"/api/rooms/{room}/injections",
                json={"source": f"inject/{room}.mp4", "name": "Bars"},
            )
            assert r.status_code == 201, r.text
            rec = r.json()
            assert rec["state"] == "starting" and rec["identity"] == f"inject-{rec['id']}"
            tracks = await receive(http, viewer, rec, ("audio", "video"))
            t_tracks = time.monotonic() - t0
            pcm, frames, fps, samples = await collect_av(tracks, 3.0)
            people = (await http.get(f"/api/rooms/{room}/participants")).json()
            injected = next(p for p in people if p["identity"] == rec["identity"])
            assert injected["name"] == "Bars" and injected["kind"] == "ingress"
            assert sorted(t["kind"] for t in injected["tracks"]) == ["audio", "video"]
            # The file ends: the injection completes by itself and its participant leaves.
            left = await viewer[0].wait_event(
                "peerLeft", lambda d: d["peerId"] == rec["peer_id"], timeout=20
            )
            done = await wait_injection(
                http, room, rec["id"], lambda x: x["state"] in ("completed", "failed")
            )
    finally:
        await leave(viewer)
    assert done["state"] == "completed", done
    assert "the source ended" in done["history"][-1]["reason"], done
    freq = tone_of(pcm)
    assert abs(freq - TONE_HZ) < 3, freq
    assert rms(pcm[len(pcm) // 4 :]) > 0.05
    assert samples and samples[-1].shape == (SIZE[1], SIZE[0], 3)
    colours = [bar_colours(s) for s in samples]
    assert all(c == {k: k for k in BARS} for c in colours), colours
    assert FPS * 0.7 <= fps <= FPS * 1.1, (frames, fps)
    await stack.hooks.wait_for("injection.started", lambda d: d["id"] == rec["id"])
    await stack.hooks.wait_for("injection.finished", lambda d: d["id"] == rec["id"])
    log.info(
        "measured: file injection: tracks at the viewer %.2f s after the request, tone %.2f Hz, "
        "%d video frames in 3 s at %.1f fps, bars %s in %d sampled frames, played %.2f s of "
        "an 8 s file, peerLeft %r",
        t_tracks, freq, frames, fps, colours[-1], len(colours), done["played_s"] or 0.0,
        left["reason"],
    )  # fmt: skip


async def test_loop_keeps_playing_until_stopped(stack: Stack) -> None:
    room = f"inj-{uuid.uuid4().hex[:6]}"
    make_av_file(stack.media.root / "inject" / f"{room}-2s.mp4", seconds=2.0)
    viewer = await join(stack, room)
    try:
        async with stack.http() as http:
            body = {"source": f"inject/{room}-2s.mp4", "loop": True, "video": False}
            r = await http.post(f"/api/rooms/{room}/injections", json=body)
            assert r.status_code == 201, r.text
            rec = r.json()
            tracks = await receive(http, viewer, rec, ("audio",))
            pcm = await collect_track_audio(tracks["audio"], 7.0)
            running = (await http.get(f"/api/rooms/{room}/injections/{rec['id']}")).json()
            assert running["state"] == "running", running
            stopped = await http.post(f"/api/rooms/{room}/injections/{rec['id']}/stop")
            assert stopped.status_code == 200, stopped.text
            done = stopped.json()
            left = await viewer[0].wait_event("peerLeft", lambda d: d["peerId"] == rec["peer_id"])
            closed = await viewer[0].wait_event(
                "producerClosed", lambda d: d["peerId"] == rec["peer_id"]
            )
            people = (await http.get(f"/api/rooms/{room}/participants")).json()
            again = await http.post(f"/api/rooms/{room}/injections/{rec['id']}/stop")
    finally:
        await leave(viewer)
    assert done["state"] == "completed", done
    assert all(p["identity"] != rec["identity"] for p in people), people
    assert again.status_code == 409, again.text
    assert closed["producerId"] == running["producers"]["audio"]
    # 7 s of a 2 s file: the tone is there at the end, and no half second went silent.
    tail = pcm[-2 * 48000 :]
    freq = dominant_frequency(tail, 48000)
    assert abs(freq - TONE_HZ) < 3, freq
    windows = [rms(pcm[i : i + 24000]) for i in range(24000, len(pcm) - 24000, 24000)]
    assert min(windows) > 0.05, windows
    assert running["loops"] >= 2, running
    log.info(
        "measured: loop of a 2 s file: %.1f s received, tone %.2f Hz in the last 2 s, quietest "
        "0.5 s window rms %.3f, %d loops, played %.2f s at stop; peerLeft reason %r",
        len(pcm) / 48000, freq, min(windows), done["loops"], done["played_s"] or 0.0,
        left["reason"],
    )  # fmt: skip


async def test_rtmp_source(stack: Stack, nginx: NginxRtmp) -> None:
    room = f"inj-{uuid.uuid4().hex[:6]}"
    publisher = await publish_rtmp(nginx.url("live-src"))
    viewer = await join(stack, room)
    try:
        await asyncio.sleep(2)  # nginx has the stream once ffmpeg has published its header
        async with stack.http() as http:
            r = await http.post(
                f"/api/rooms/{room}/injections", json={"source": nginx.url("live-src")}
            )
            assert r.status_code == 201, r.text
            rec = r.json()
            assert rec["source_type"] == "rtmp"
            tracks = await receive(http, viewer, rec, ("audio", "video"))
            pcm, frames, fps, samples = await collect_av(tracks, 3.0)
            done = (await http.post(f"/api/rooms/{room}/injections/{rec['id']}/stop")).json()
    finally:
        await leave(viewer)
        await publisher.stop()
    assert done["state"] == "completed", done
    freq = tone_of(pcm)
    assert abs(freq - TONE_HZ) < 3, freq
    assert samples and bar_colours(samples[-1]) == {k: k for k in BARS}
    log.info(
        "measured: RTMP source via nginx: tone %.2f Hz, %d video frames in 3 s at %.1f fps, "
        "bars %s",
        freq, frames, fps, bar_colours(samples[-1]),
    )  # fmt: skip


@pytest.mark.skipif(not rtsp_server_available(), reason="gir1.2-gst-rtsp-server-1.0 is missing")
async def test_rtsp_source(stack: Stack) -> None:
    room = f"inj-{uuid.uuid4().hex[:6]}"
    server, url = await start_rtsp_server()
    viewer = await join(stack, room)
    try:
        async with stack.http() as http:
            r = await http.post(f"/api/rooms/{room}/injections", json={"source": url})
            assert r.status_code == 201, r.text
            rec = r.json()
            assert rec["source_type"] == "rtsp"
            tracks = await receive(http, viewer, rec, ("audio", "video"))
            pcm, frames, fps, samples = await collect_av(tracks, 3.0)
            done = (await http.post(f"/api/rooms/{room}/injections/{rec['id']}/stop")).json()
    finally:
        await leave(viewer)
        await server.stop()
    assert done["state"] == "completed", done
    freq = tone_of(pcm)
    assert abs(freq - TONE_HZ) < 3, freq
    assert samples and bar_colours(samples[-1]) == {k: k for k in BARS}
    log.info("measured: RTSP source: tone %.2f Hz, %d video frames in 3 s at %.1f fps",
             freq, frames, fps)  # fmt: skip


async def test_http_file_and_hls_sources(stack: Stack, tmp_path: Path) -> None:
    room = f"inj-{uuid.uuid4().hex[:6]}"
    make_av_file(tmp_path / "www" / "tone.mp4", seconds=20.0, freq=660.0)
    make_hls(tmp_path / "www" / "hls", seconds=20.0, freq=1000.0)
    results: dict[str, float] = {}
    async with HttpFiles.serving(tmp_path / "www") as files, stack.http() as http:
        for url, kind, want in (
            (files.url("tone.mp4"), "http", 660.0),
            (files.url("hls/index.m3u8"), "hls", 1000.0),
        ):
            viewer = await join(stack, room, f"viewer-{kind}")
            try:
                r = await http.post(
                    f"/api/rooms/{room}/injections", json={"source": url, "video": False}
                )
                assert r.status_code == 201, r.text
                rec = r.json()
                assert rec["source_type"] == kind
                tracks = await receive(http, viewer, rec, ("audio",))
                pcm = await collect_track_audio(tracks["audio"], 3.0)
                # An admin removing the injection's participant ends the injection.
                gone = await http.delete(f"/api/rooms/{room}/participants/{rec['identity']}")
                assert gone.status_code == 204, gone.text
                done = await wait_injection(
                    http, room, rec["id"], lambda x: x["state"] in ("completed", "failed")
                )
            finally:
                await leave(viewer)
            assert done["state"] == "completed", done
            assert "removed by an admin" in done["history"][-1]["reason"], done
            results[kind] = tone_of(pcm)
            assert abs(results[kind] - want) < 3, (kind, results[kind])
        # A playlist from the network that lists a local file (file:// segments):
        # hlsdemux would open it with filesrc, past the media root's confinement.
        hls = tmp_path / "www" / "hls"
        lines = (hls / "index.m3u8").read_text().splitlines()
        (hls / "local.m3u8").write_text("\n".join(
            f"file://{hls / ln}" if ln.endswith(".ts") else ln for ln in lines
        ) + "\n")  # fmt: skip
        assert "file:///" in (hls / "local.m3u8").read_text()
        r = await http.post(
            f"/api/rooms/{room}/injections", json={"source": files.url("hls/local.m3u8")}
        )
        assert r.status_code == 201, r.text
        refused = await wait_injection(
            http, room, r.json()["id"], lambda x: x["state"] in ("completed", "failed")
        )
        assert refused["state"] == "failed", refused
        assert "may not open a local file" in refused["error"], refused["error"]
        assert not refused["producers"], refused  # nothing of it reached the room
    log.info(
        "measured: HTTP file tone %.2f Hz, HLS tone %.2f Hz; playlist with file:// segments: %s",
        results["http"], results["hls"], refused["error"][:120],
    )  # fmt: skip


async def test_injection_refusals(stack: Stack) -> None:
    room = f"inj-{uuid.uuid4().hex[:6]}"
    make_av_file(stack.media.root / "inject" / f"{room}.mp4", seconds=2.0)
    (stack.media.root.parent / "secret.mp4").write_bytes(b"not for injection")
    # Another room's recording and egress output, and one of this room's own.
    for rel in (f"rooms/x{room}/rec.mp4", f"egress/x{room}/out.mp4", f"rooms/{room}/own.mp4"):
        (stack.media.root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(stack.media.root / "inject" / f"{room}.mp4", stack.media.root / rel)
    viewer = await join(stack, room)
    try:
        async with stack.http() as http:
            url = f"/api/rooms/{room}/injections"
            cases = [
                ({"source": "../secret.mp4"}, 400),
                ({"source": "inject/../../secret.mp4"}, 400),
                ({"source": "/etc/passwd"}, 400),
                ({"source": "inject/missing.mp4"}, 400),
                ({"source": "file:///etc/passwd"}, 400),
                ({"source": "ftp://127.0.0.1/x.mp4"}, 400),
                ({"source": "gopher://127.0.0.1/x"}, 400),
                ({"source": "http://"}, 400),
                ({"source": "http://127.0.0.1/a b.mp4"}, 400),
                ({"source": "rtmp://h:99999/live/k"}, 400),
                ({"source": f"rooms/x{room}/rec.mp4"}, 403),
                ({"source": f"egress/x{room}/out.mp4"}, 403),
                ({"source": f"inject/../rooms/x{room}/rec.mp4"}, 400),
                ({"source": f"inject/{room}.mp4", "audio": False, "video": False}, 422),
                ({"source": ""}, 422),
                ({"source": f"inject/{room}.mp4", "extra": 1}, 422),
            ]
            for body, code in cases:
                r = await http.post(url, json=body)
                assert r.status_code == code, (body, r.status_code, r.text)
                assert r.json()["error"]["message"], r.text
            nope = await http.post("/api/rooms/nope-x/injections", json={"source": "a.mp4"})
            assert nope.status_code == 404, nope.text
            assert (await http.get(f"{url}/0123456789abcdef")).status_code == 404
            assert (await http.post(f"{url}/0123456789abcdef/stop")).status_code == 404

            # Sources that cannot be played fail the injection with a reason, in bounded time.
            failures = {}
            async with silent_tcp_server() as silent_port:
                for label, source in (
                    ("closed port", f"http://127.0.0.1:{free_tcp_port()}/x.mp4"),
                    ("silent server", f"http://127.0.0.1:{silent_port}/x.mp4"),
                    ("closed rtsp", f"rtsp://127.0.0.1:{free_tcp_port()}/x"),
                ):
                    t0 = time.monotonic()
                    r = await http.post(url, json={"source": source})
                    assert r.status_code == 201, r.text
                    failed = await wait_injection(
                        http, room, r.json()["id"], lambda x: x["state"] in ("failed", "completed")
                    )
                    assert failed["state"] == "failed", failed
                    assert failed["error"], failed
                    failures[label] = (time.monotonic() - t0, failed["error"])
                    assert failures[label][0] < 16, failures
            await stack.hooks.wait_for("injection.failed", lambda d: d["room"] == room)
            people = (await http.get(f"/api/rooms/{room}/participants")).json()
            assert [p["identity"] for p in people] == ["viewer"], people
            listed = (await http.get("/api/injections", params={"room": room})).json()
            assert sorted(x["state"] for x in listed) == ["failed"] * 3, listed
            assert all("127.0.0.1" in x["source"] for x in listed), listed
            # The room's own recording may be replayed into it.
            own = await http.post(url, json={"source": f"rooms/{room}/own.mp4", "video": False})
            assert own.status_code == 201, own.text
            stopped = await http.post(f"{url}/{own.json()['id']}/stop")
            assert stopped.status_code == 200 and stopped.json()["state"] == "completed", (
                stopped.text
            )
        async with httpx.AsyncClient(base_url=stack.control.http) as anon:
            assert (await anon.post(url, json={"source": "a.mp4"})).status_code == 401
        plain = participant(stack.settings, "mallory", room)
        other = token(stack.settings, "eve", room="elsewhere", room_admin=True)
        for tok in (plain, other):
            async with stack.http(tok) as http:
                r = await http.post(url, json={"source": f"inject/{room}.mp4"})
                assert r.status_code == 403, r.text
    finally:
        await leave(viewer)
    for label, (secs, why) in failures.items():
        log.info("measured: %s failed after %.2f s: %s", label, secs, why[:160])


async def test_room_deleted_ends_injection(stack: Stack) -> None:
    room = f"inj-{uuid.uuid4().hex[:6]}"
    make_av_file(stack.media.root / "inject" / f"{room}.mp4", seconds=2.0)
    viewer = await join(stack, room)
    try:
        async with stack.http() as http:
            body = {"source": f"inject/{room}.mp4", "loop": True, "video": False}
            rec = (await http.post(f"/api/rooms/{room}/injections", json=body)).json()
            await receive(http, viewer, rec, ("audio",))
            job_id = (await wait_injection(http, room, rec["id"], lambda x: x["media_job_id"]))[
                "media_job_id"
            ]
            assert (await http.delete(f"/api/rooms/{room}")).status_code == 204
            # The room is gone, so the record is read from the all-rooms list.
            async with asyncio.timeout(15):
                while True:
                    listed = (await http.get("/api/injections")).json()
                    done = next(x for x in listed if x["id"] == rec["id"])
                    if done["state"] in ("completed", "failed"):
                        break
                    await asyncio.sleep(0.2)
        async with stack.media.client() as media:
            job = (await media.get(f"/jobs/{job_id}")).json()
    finally:
        await leave(viewer)
    assert done["state"] == "completed", done
    assert "room deleted" in done["history"][-1]["reason"], done
    assert job["state"] == "completed", job
    log.info("measured: room deleted -> injection %s (%s), its job %s",
             done["state"], done["history"][-1]["reason"], job["state"])  # fmt: skip
