"""WHIP into a room and WHEP out of it, with aiortc as the client: real control plane,
real SFU, real Redis; the media checked by decoded content."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.rtcrtpsender import RTCRtpSender

from mediaplane.peer import MediasoupPeer, PatternVideoTrack, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.peer.tracks import read_frame_counter
from mediaplane.settings import Settings
from tests.integration.test_recording_e2e import wait_rec
from tests.support.control import ControlInstance, admin, participant
from tests.support.mediacheck import (
    check_pattern_video,
    collect_track_audio,
    decode_audio,
    dominant_frequency,
    probe_streams,
    rms,
)
from tests.support.stack import Stack
from tests.support.whip_client import AiortcWhipClient

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


async def new_room(settings: Settings, control: ControlInstance) -> str:
    room = f"whip-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{control.http}/api/rooms",
            json={"name": room},
            headers={"Authorization": f"Bearer {admin(settings)}"},
        )
        assert r.status_code == 201, r.text
    return room


async def join(
    settings: Settings, control: ControlInstance, room: str, identity: str
) -> tuple[SignalingClient, MediasoupPeer, dict[str, Any]]:
    sig = await SignalingClient.connect(control.ws(room), participant(settings, identity, room))
    joined = await sig.request("join", {"displayName": identity})
    return sig, MediasoupPeer(sig, joined["routerRtpCapabilities"]), joined


async def decoded_frame_counters(track: Any, count: int) -> list[int]:
    """Decode `count` video frames of PatternVideoTrack; return the frame numbers drawn in them."""
    out = []
    async with asyncio.timeout(20):
        while len(out) < count:
            frame = await track.recv()
            assert (frame.width, frame.height) == (320, 240)
            out.append(read_frame_counter(frame.to_ndarray(format="rgb24")))
    return out


async def announced(sig: SignalingClient, identity: str) -> tuple[Any, list[Any]]:
    """The peerJoined of `identity`, then its newProducer events for audio and video."""
    joined = await sig.wait_event("peerJoined", lambda d: d["peer"]["identity"] == identity)
    news = [
        await sig.wait_event(
            "newProducer", lambda d, k=k: d["kind"] == k and d["identity"] == identity
        )  # type: ignore[misc]
        for k in ("audio", "video")
    ]
    return joined, news


def medians(counters: list[int]) -> str:
    return f"{np.median(counters[:10]):.0f} -> {np.median(counters[-10:]):.0f} (medians)"


def rising(counters: list[int]) -> bool:
    """Fresh frames in order: later frames carry later numbers, and nearly every frame's
    number is above the one before (a dropped frame skips one; none go back)."""
    ordered = np.mean([b > a for a, b in itertools.pairwise(counters)])
    return bool(ordered >= 0.9) and counters[-1] >= counters[0] + 20


async def test_whip_publish_reaches_a_room_peer(
    settings: Settings, control: ControlInstance
) -> None:
    room = await new_room(settings, control)
    sig, bob, _ = await join(settings, control, room, "bob")
    whip = AiortcWhipClient(
        f"{control.http}/whip/rooms/{room}",
        participant(settings, "obs", room, can_subscribe=False),
    )
    try:
        t0 = time.monotonic()
        await whip.publish(ToneTrack(freq=660.0), PatternVideoTrack())
        await whip.wait_connected()
        connect_s = time.monotonic() - t0
        assert "a=ice-lite" in whip.answer and "a=setup:passive" in whip.answer
        joined, news = await announced(sig, "obs")
        by_kind = {n["kind"]: n["producerId"] for n in news}
        assert {n["source"] for n in news} == {"audio", "video"}

        _, audio = await bob.subscribe(by_kind["audio"])
        _, video = await bob.subscribe(by_kind["video"])
        pcm = (await collect_track_audio(audio, 3.0))[48000:]
        freq = dominant_frequency(pcm, 48000)
        assert rms(pcm) > 0.05 and abs(freq - 660.0) <= 5.0, freq
        counters = await decoded_frame_counters(video, 60)
        assert rising(counters), counters

        async with httpx.AsyncClient() as http:
            r = await http.get(
                f"{control.http}/api/rooms/{room}/participants",
                headers={"Authorization": f"Bearer {admin(settings)}"},
            )
        obs = next(p for p in r.json() if p["identity"] == "obs")
        assert sorted(t["kind"] for t in obs["tracks"]) == ["audio", "video"]

        assert await whip.delete() == 200
        left = await sig.wait_event("peerLeft", lambda d: d["peerId"] == joined["peer"]["peerId"])
        assert left["reason"] == "left"
        assert await whip.delete() == 200  # again: already ended, still fine
        log.info(
            "measured: WHIP connected in %.2f s; tone %.2f Hz rms %.3f; frame numbers %s",
            connect_s, freq, rms(pcm), medians(counters),
        )  # fmt: skip
    finally:
        await whip.close()
        await bob.close()
        await sig.close()


async def test_whip_h264_like_obs_and_a_refused_retry_keeps_the_session(
    settings: Settings, control: ControlInstance
) -> None:
    """OBS offers H.264 (constrained baseline, packetization-mode 1) and Opus. While it is
    live, a refused offer with the same token (a bad retry) must not end its session."""
    room = await new_room(settings, control)
    sig, bob, _ = await join(settings, control, room, "bob")
    token = participant(settings, "obs", room, can_subscribe=False)
    whip = AiortcWhipClient(f"{control.http}/whip/rooms/{room}", token)
    try:
        await whip.publish(ToneTrack(freq=698.0), PatternVideoTrack(), video_codec="video/H264")
        await whip.wait_connected()
        assert "H264/90000" in whip.answer and "VP8" not in whip.answer, whip.answer
        joined, news = await announced(sig, "obs")
        by_kind = {n["kind"]: n["producerId"] for n in news}
        video_consumer, video = await bob.subscribe(by_kind["video"])
        codec = bob.consumers[video_consumer]["rtpParameters"]["codecs"][0]
        assert codec["mimeType"].lower() == "video/h264", codec
        counters = await decoded_frame_counters(video, 60)
        assert rising(counters), counters

        # A retry the server refuses (PCMU only: 406), from the same identity.
        pc = RTCPeerConnection()
        audio = pc.addTransceiver("audio", direction="sendonly")
        audio.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
        )
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(timeout=15) as http:
            refused = await http.post(
                f"{control.http}/whip/rooms/{room}",
                content=pc.localDescription.sdp,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"},
            )
        await pc.close()
        assert refused.status_code == 406, refused.text
        # The live session goes on: still listed with both tracks, no peerLeft, video flows.
        async with httpx.AsyncClient() as http:
            r = await http.get(
                f"{control.http}/api/rooms/{room}/participants",
                headers={"Authorization": f"Bearer {admin(settings)}"},
            )
        obs = [p for p in r.json() if p["identity"] == "obs"]
        assert len(obs) == 1 and sorted(t["kind"] for t in obs[0]["tracks"]) == [
            "audio",
            "video",
        ], obs
        later = await decoded_frame_counters(video, 30)
        in_order = np.mean([b == a + 1 for a, b in itertools.pairwise(later)])
        assert rising(later) and later[0] > counters[-1], (counters, later)
        assert not [
            d for e, d in sig.events if e == "peerLeft" and d["peerId"] == joined["peer"]["peerId"]
        ]
        log.info(
            "measured: WHIP H.264 (%s) frame numbers %s, then %.0f %% in order after a "
            "refused retry",
            codec.get("parameters"), medians(counters), 100 * in_order,
        )  # fmt: skip
    finally:
        await whip.delete()
        await whip.close()
        await bob.close()
        await sig.close()


async def test_whep_plays_a_participants_audio(
    settings: Settings, control: ControlInstance
) -> None:
    room = await new_room(settings, control)
    sig, alice, _ = await join(settings, control, room, "alice")
    whep = AiortcWhipClient(
        f"{control.http}/whep/rooms/{room}/participants/alice",
        participant(settings, "viewer", room, can_publish=False),
    )
    try:
        await alice.publish(ToneTrack(freq=523.0))
        await alice.publish(PatternVideoTrack())
        tracks = await whep.play("audio", "video")
        await whep.wait_connected()
        assert "a=sendonly" in whep.answer
        pcm = (await collect_track_audio(tracks["audio"], 3.0))[48000:]
        freq = dominant_frequency(pcm, 48000)
        assert rms(pcm) > 0.05 and abs(freq - 523.0) <= 5.0, freq
        counters = await decoded_frame_counters(tracks["video"], 60)
        assert rising(counters), counters
        # The participant played leaves: the session ends (its viewer leaves the room).
        await alice.close()
        await sig.close()
        t_left = time.monotonic()
        async with httpx.AsyncClient() as http, asyncio.timeout(5):
            while True:
                r = await http.get(
                    f"{control.http}/api/rooms/{room}/participants",
                    headers={"Authorization": f"Bearer {admin(settings)}"},
                )
                if r.json() == []:
                    break
                await asyncio.sleep(0.1)
        ended_s = time.monotonic() - t_left
        assert await whep.delete() == 200  # already ended: still fine
        log.info(
            "measured: WHEP tone %.2f Hz rms %.3f; frame numbers %s; session ended %.2f s "
            "after the participant left",
            freq, rms(pcm), medians(counters), ended_s,
        )  # fmt: skip
    finally:
        await whep.close()
        await alice.close()
        await sig.close()


async def record_encoder(stack: Stack, room: str, seconds: float, out: Path) -> Path:
    """Record the participant "encoder" for `seconds` through the REST API, into `out`."""
    async with stack.http() as http:
        r = await http.post(f"/api/rooms/{room}/recordings", json={"identity": "encoder"})
        assert r.status_code == 202, r.text
        rec_id = r.json()["id"]
        await wait_rec(http, room, rec_id, lambda x: x["state"] == "running")
        await asyncio.sleep(seconds)
        done = (await http.post(f"/api/rooms/{room}/recordings/{rec_id}/stop")).json()
        assert done["state"] == "completed", done
        out.write_bytes((await http.get(f"/api/rooms/{room}/recordings/{rec_id}/file")).content)
    return out


async def test_whip_participant_is_recordable(stack: Stack, tmp_path: Path) -> None:
    """A WHIP publisher is a participant like any: the RecordingService records it."""
    settings, control = stack.settings, stack.control
    room = await new_room(settings, control)
    whip = AiortcWhipClient(
        f"{control.http}/whip/rooms/{room}", participant(settings, "encoder", room)
    )
    try:
        await whip.publish(ToneTrack(freq=740.0), PatternVideoTrack())
        await whip.wait_connected()
        out = await record_encoder(stack, room, 4.0, tmp_path / "encoder.webm")
    finally:
        await whip.delete()
        await whip.close()
    streams = {s.codec_type: s for s in probe_streams(out, count_frames=True)}
    pcm = decode_audio(out)
    freq = dominant_frequency(pcm[24000:-24000], 48000)
    frames = streams["video"].frames or 0
    log.info(
        "measured: WHIP recording %.2f s, %.2f Hz, %d video frames", len(pcm) / 48000, freq, frames
    )
    assert abs(freq - 740.0) <= 5.0 and len(pcm) / 48000 > 3.0
    assert frames >= 60
    pattern = check_pattern_video(out)  # the frames are the pattern sent, in order
    log.info(
        "measured: WHIP pattern %d decoded, consecutive %.2f, bar %.2f, background %.2f",
        len(pattern.numbers), pattern.consecutive_share, pattern.bar_share,
        pattern.background_share,
    )  # fmt: skip
    assert len(pattern.numbers) >= 60 and pattern.in_order, pattern.numbers[:40]
    assert pattern.bar_share >= 0.9 and pattern.background_share >= 0.9, pattern


class GrowingPattern(PatternVideoTrack):
    """The pattern at 320x240, then at 640x480 from frame `at` on (a new SPS: an H.264
    encoder restarts at the new size, as a simulcast layer switch or a scaling browser
    changes it)."""

    def __init__(self, at: int) -> None:
        super().__init__(width=320, height=240, fps=15)
        self.at = at
        self.n = 0

    async def recv(self) -> Any:
        self.n += 1
        if self.n == self.at:
            self.width, self.height = 640, 480
        return await super().recv()


async def test_an_h264_recording_survives_a_size_change(stack: Stack, tmp_path: Path) -> None:
    """matroskamux refused the caps of the new size once its header was written: the
    recording failed at the first change ("Could not multiplex stream"). Now both sizes
    are in the one file and decode (media/worker/kinds/record.py)."""
    settings, control = stack.settings, stack.control
    room = await new_room(settings, control)
    whip = AiortcWhipClient(
        f"{control.http}/whip/rooms/{room}", participant(settings, "encoder", room)
    )
    try:
        await whip.publish(ToneTrack(freq=740.0), GrowingPattern(at=60), video_codec="video/H264")
        await whip.wait_connected()
        # The size changes 4 s after the publish.
        out = await record_encoder(stack, room, 8.0, tmp_path / "encoder.mkv")
    finally:
        await whip.delete()
        await whip.close()
    from tests.integration.test_recording_layer import frame_sizes

    frames = frame_sizes(out)
    sizes = Counter(size for _, size in frames)
    change = next(t for t, size in frames if size == "640x480") - frames[0][0]
    span = frames[-1][0] - frames[0][0]
    log.info("measured: H.264 recording frames by size %s; 640x480 from %.2f s of %.2f s",
             dict(sizes), change, span)  # fmt: skip
    assert streams_codec(out) == "h264"
    assert sizes["320x240"] > 15 and sizes["640x480"] > 30, sizes
    assert span > 6.5, span  # one timeline: the frames after the change are not lost


def streams_codec(path: Path) -> str:
    return next(s.codec_name for s in probe_streams(path) if s.codec_type == "video")
