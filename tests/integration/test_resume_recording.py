"""A recording, an egress and a room composite of a participant whose connection goes
away for 5 s and who then resumes go on in the same file each: one job of each, never
ended, each file decoding the tone before the gap, silence of the gap's length, and the
tone after it (by content, not by events).

The outage is the sender's: alice's socket is lost without a closing handshake and her
tone track sends nothing for 5 s (its RTP timestamps run on, as after a real outage),
then she resumes her session on a new socket and her packets flow again. Real control
plane, SFU, media manager (GStreamer), Redis; aiortc peers."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import av
import pytest

from mediaplane.peer import MediasoupPeer, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from tests.integration.test_egress import wait_egress
from tests.integration.test_recording_e2e import wait_rec
from tests.support.control import participant
from tests.support.mediacheck import decode_audio, dominant_frequency, silent_runs
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

OUTAGE_S = 5.0
RATE = 48000


class GatedTone(ToneTrack):
    """A tone that sends nothing while `cut` is set; its clock runs on meanwhile."""

    def __init__(self, freq: float) -> None:
        super().__init__(freq=freq)
        self.cut = False

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        while self.cut:
            frame = await super().recv()
        return frame


async def test_a_recording_goes_on_in_the_same_file_across_a_resumed_outage(
    stack: Stack, tmp_path: Path
) -> None:
    room = f"rrec-{uuid.uuid4().hex[:6]}"
    settings = stack.settings
    sig_a = await SignalingClient.connect(
        stack.control.ws(room), participant(settings, "alice", room)
    )
    joined = await sig_a.request("join")
    alice = MediasoupPeer(sig_a, joined["routerRtpCapabilities"])
    sig_b = await SignalingClient.connect(
        stack.control.ws(room), participant(settings, "bob", room)
    )
    await sig_b.request("join")
    tone = GatedTone(freq=440.0)
    await alice.publish(tone)
    sig_new: SignalingClient | None = None
    # The egress of alice alone and the room's composite (its mix: alice's tone only).
    egress_bodies = {
        "egress": {"source": "participant", "identity": "alice", "output": "file",
                   "format": "mp4", "audioOnly": True},
        "composite": {"source": "room", "output": "file", "format": "mp4",
                      "width": 320, "height": 180, "fps": 10, "videoKbps": 200},
    }  # fmt: skip
    files: dict[str, Path] = {}
    spans: dict[str, float] = {}
    try:
        async with stack.http() as http:
            r = await http.post(
                f"/api/rooms/{room}/recordings", json={"identity": "alice", "video": False}
            )
            assert r.status_code == 202, r.text
            rec = await wait_rec(http, room, r.json()["id"], lambda x: x["state"] == "running")
            egresses = {}
            for name, body in egress_bodies.items():
                r = await http.post(f"/api/rooms/{room}/egress", json=body)
                assert r.status_code == 202, r.text
                egresses[name] = await wait_egress(
                    http, room, r.json()["id"], lambda e: e["state"] == "running"
                )
            await asyncio.sleep(4.0)
            token = sig_a.resume_token
            assert token is not None
            tone.cut = True
            sig_a.drop()
            cut_at = time.monotonic()
            await asyncio.sleep(OUTAGE_S)
            during = (await http.get(f"/api/rooms/{room}/recordings/{rec['id']}")).json()
            during_egress = {
                name: (await http.get(f"/api/rooms/{room}/egress/{eg['id']}")).json()["state"]
                for name, eg in egresses.items()
            }
            sig_new, reply = await SignalingClient.resume(
                stack.control.ws(room), participant(settings, "alice", room), token
            )
            alice.signaling = sig_new
            tone.cut = False
            gap_s = time.monotonic() - cut_at
            assert reply["peerId"] == joined["peerId"]
            await asyncio.sleep(4.0)
            r = await http.post(f"/api/rooms/{room}/recordings/{rec['id']}/stop")
            done = r.json()
            listed = (await http.get("/api/recordings", params={"room": room})).json()
            got = await http.get(f"/api/rooms/{room}/recordings/{rec['id']}/file")
            assert got.status_code == 200
            files["recording"] = tmp_path / "alice.webm"
            files["recording"].write_bytes(got.content)
            spans["recording"] = done["stopped_at"] - done["started_at"]
            done_egress = {}
            for name, eg in egresses.items():
                ended = (await http.post(f"/api/rooms/{room}/egress/{eg['id']}/stop")).json()
                done_egress[name] = ended
                got = await http.get(f"/api/rooms/{room}/egress/{eg['id']}/file")
                assert got.status_code == 200, got.text
                files[name] = tmp_path / f"{name}.mp4"
                files[name].write_bytes(got.content)
                spans[name] = ended["stopped_at"] - ended["started_at"]
            listed_egress = (await http.get(f"/api/rooms/{room}/egress")).json()
    finally:
        await alice.close()
        for sig in (sig_new, sig_b, sig_a):
            if sig is not None:
                await sig.close()
    assert during["state"] == "running", during  # the outage did not end it
    assert done["state"] == "completed", done
    assert [x["id"] for x in listed] == [rec["id"]]  # one recording, not a second one
    assert during_egress == {"egress": "running", "composite": "running"}, during_egress
    assert {n: e["state"] for n, e in done_egress.items()} == {
        "egress": "completed", "composite": "completed"}, done_egress  # fmt: skip
    assert sorted(e["id"] for e in listed_egress) == sorted(e["id"] for e in egresses.values())
    assert not [d for e, d in sig_b.events if e == "peerLeft"]
    for name, path in files.items():
        _tone_gap_tone(name, path, spans[name], gap_s)


def _tone_gap_tone(name: str, path: Path, span: float, gap_s: float) -> None:
    """The file decodes the tone, one silence of the gap's length, the tone again."""
    pcm = decode_audio(path, timeline=True)
    # Where the silence is, in 100 ms windows: the gap must be one stretch, with the tone
    # on both sides.
    win = RATE // 10
    runs = silent_runs(pcm, win)  # [start, end) of each silent stretch, in windows
    assert runs, f"{name}: no silence in the file: the gap was not kept"
    first_q, end_q = max(runs, key=lambda r: r[1] - r[0])
    silence_s = (end_q - first_q) / 10
    before = pcm[: max(0, first_q - 1) * win]
    after = pcm[(end_q + 1) * win :]
    f_before = dominant_frequency(before[RATE // 2 :], RATE)
    f_after = dominant_frequency(after[: len(after) - RATE // 2], RATE)
    log.info(
        "measured: %s %.2f s for a %.2f s span; tone %.1f Hz for %.2f s, silence "
        "%.2f s (the outage lasted %.2f s), tone %.1f Hz for %.2f s after",
        name, len(pcm) / RATE, span, f_before, len(before) / RATE, silence_s, gap_s, f_after,
        len(after) / RATE,
    )  # fmt: skip
    assert abs(f_before - 440.0) <= 5.0 and abs(f_after - 440.0) <= 5.0, (name, f_before, f_after)
    assert len(before) / RATE >= 3.0 and len(after) / RATE >= 2.5, name
    assert abs(silence_s - gap_s) <= 1.0, (name, silence_s, gap_s)
    # Outside the gap the tone is whole: no other silence but a start-up instant.
    others = [r for r in runs if r != (first_q, end_q)]
    assert sum(b - a for a, b in others) <= 5, (name, others)
    assert abs(len(pcm) / RATE - span) <= 1.0, (name, len(pcm) / RATE, span)
