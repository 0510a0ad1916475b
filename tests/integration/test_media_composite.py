"""The composite job of the media manager: real RTP in, one mixed file out, checked decoded."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.state.redis_server import free_tcp_port
from tests.support.gst import GstProcess, tile_sender
from tests.support.media import OPUS, VP8, MediaService, wait_job
from tests.support.mediacheck import (
    band_energy_ratio,
    decode_audio,
    decode_frame,
    dominant_color,
    probe_streams,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)

PEOPLE = {  # participant -> (tone Hz, colour)
    "alice": (330.0, 0xFF0000),
    "bob": (660.0, 0x00FF00),
    "carol": (990.0, 0x0000FF),
}
VOLUME = {"alice": 0.3, "bob": 0.3, "carol": 0.7}  # carol 7.4 dB louder: the active speaker


def _inputs(who: str) -> list[dict[str, Any]]:
    return [
        {"id": f"{who}-a", "participant": who, "name": who.title(), "stream": OPUS},
        {"id": f"{who}-v", "participant": who, "name": who.title(), "stream": VP8},
    ]


async def _send(job: dict[str, Any], who: str, seconds: float, base: int) -> GstProcess:
    tone, color = PEOPLE[who]
    argv = tile_sender(
        job["rtp"][f"{who}-a"]["port"], job["rtp"][f"{who}-v"]["port"],
        seconds=seconds, freq=tone, color=color, ssrc_base=base, volume=VOLUME[who],
    )  # fmt: skip
    return await GstProcess.start(*argv)


async def _add(http: httpx.AsyncClient, job_id: str, who: str) -> dict[str, Any]:
    for spec in _inputs(who):
        r = await http.post(f"/jobs/{job_id}/inputs", json=spec)
        assert r.status_code == 201, r.text
    return (await http.get(f"/jobs/{job_id}")).json()  # type: ignore[no-any-return]


async def test_composite_follows_tracks_and_mixes_all(media: MediaService) -> None:
    body = {
        "kind": "composite", "filePath": "rooms/c/mix", "format": "mp4",
        "width": 640, "height": 360, "fps": 15, "videoKbps": 800,
        "inputs": _inputs("alice") + _inputs("bob"),
    }  # fmt: skip
    async with media.client() as http:
        r = await http.post("/jobs", json=body)
        assert r.status_code == 202, r.text
        job = r.json()
        t0 = time.monotonic()
        senders = [await _send(job, "alice", 12, 100), await _send(job, "bob", 12, 200)]
        await wait_job(http, job["id"], lambda j: j["state"] == "running")
        await asyncio.sleep(3)
        job = await _add(http, job["id"], "carol")
        t_carol = time.monotonic() - t0
        senders.append(await _send(job, "carol", 9, 300))
        await asyncio.sleep(4)
        speaker = (await http.get(f"/jobs/{job['id']}")).json()["active_speaker"]
        assert speaker == "carol", speaker
        for spec in _inputs("bob"):
            r = await http.delete(f"/jobs/{job['id']}/inputs/{spec['id']}")
            assert r.status_code == 204, r.text
        t_bob_gone = time.monotonic() - t0
        assert "bob-a" not in (await http.get(f"/jobs/{job['id']}")).json()["rtp"]
        await asyncio.sleep(3)
        # Bad commands: unknown input, duplicate input, a video input with a bad id.
        assert (await http.delete(f"/jobs/{job['id']}/inputs/nobody")).status_code == 404
        dup = await http.post(f"/jobs/{job['id']}/inputs", json=_inputs("alice")[0])
        assert dup.status_code == 409, dup.text
        bad_spec = {**_inputs("alice")[0], "id": "../x"}
        bad = await http.post(f"/jobs/{job['id']}/inputs", json=bad_spec)
        assert bad.status_code == 422, bad.text
        done = (await http.post(f"/jobs/{job['id']}/stop")).json()
        for s in senders:
            await s.stop()
    assert done["state"] == "completed", done
    out = Path(done["output_path"])
    streams = {s.codec_type: s for s in probe_streams(out, count_frames=True)}
    assert streams["video"].codec_name == "h264" and streams["audio"].codec_name == "aac"
    assert (streams["video"].width, streams["video"].height) == (640, 360)
    duration = streams["audio"].duration or 0.0
    assert duration > 9.0, duration

    # Three tiles while all three are in (the third row centred), two after bob left.
    three = decode_frame(out, t_carol + 2.5, 640, 360)
    seen3 = [dominant_color(three, x, y) for x, y in ((160, 90), (480, 90), (320, 270))]
    assert seen3 == ["red", "green", "blue"], seen3
    assert dominant_color(three, 20, 340) == "black"  # beside the centred last row
    # The speaker's frame (amber, 6 px) around carol's tile (x 208..432, y 186..354 for a
    # 4:3 picture in a 320x180 cell), none around alice's (x 48..272, y 6..174).
    r, g, b = (float(c) for c in three[262:278, 202:207].reshape(-1, 3).mean(axis=0))
    assert r > 180 and 120 < g < 230 and b < 90, (r, g, b)
    assert dominant_color(three, 44, 90, r=2) == "black"

    # Names drawn at the bottom left of each picture: on alice's red tile, light (text)
    # pixels there and nowhere else (green and blue are 0 in a red picture).
    def light(y0: int, y1: int, x0: int, x1: int) -> int:
        patch = three[y0:y1, x0:x1]
        return int(((patch[..., 1] > 90) & (patch[..., 2] > 90)).sum())

    name_px, elsewhere_px = light(130, 174, 48, 160), light(10, 90, 160, 270)
    assert name_px > 15 and elsewhere_px == 0, (name_px, elsewhere_px)
    two = decode_frame(out, min(t_bob_gone + 2.0, duration - 0.5), 640, 360)
    seen2 = [dominant_color(two, x, y) for x, y in ((160, 180), (480, 180))]
    assert seen2 == ["red", "blue"], seen2

    pcm = decode_audio(out)
    rate = 48000
    mid = pcm[int((t_carol + 1.0) * rate) : int((t_carol + 3.5) * rate)]
    shares = {who: band_energy_ratio(mid, rate, tone) for who, (tone, _) in PEOPLE.items()}
    assert all(share > 0.1 for share in shares.values()), shares
    log.info(
        "measured: composite %.3f s, %d frames, tiles %s then %s, tone shares %s, "
        "speaker %s framed (%.0f, %.0f, %.0f), %d name pixels",
        duration, streams["video"].frames or 0, seen3, seen2,
        {k: round(v, 2) for k, v in shares.items()}, speaker, r, g, b, name_px,
    )  # fmt: skip


async def test_input_to_a_failed_composite_says_why(media: MediaService) -> None:
    """An RTMP composite whose server refuses fails on its own; an input added after that
    is refused with the job's reason (the control plane shows it as the egress error)."""
    closed = f"rtmp://127.0.0.1:{free_tcp_port()}/live/x"
    body = {"kind": "composite", "rtmpUrl": closed, "width": 320, "height": 240, "fps": 15}
    async with media.client() as http:
        r = await http.post("/jobs", json=body)
        assert r.status_code == 202, r.text
        job = await wait_job(http, r.json()["id"], lambda j: j["state"] == "failed")
        r = await http.post(f"/jobs/{job['id']}/inputs", json=_inputs("alice")[0])
    assert r.status_code == 409, r.text
    assert "refused" in r.text.lower(), r.text
    log.info("measured: input to a failed composite: %s", r.text[:200])
