"""The media manager with real GStreamer workers; outputs checked by decoding."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gst import GstProcess, av_sender, opus_sender
from tests.support.media import OPUS, VP8, MediaService, wait_job
from tests.support.mediacheck import (
    check_ball_video,
    decode_audio,
    dominant_frequency,
    probe_streams,
)

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
async def media(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MediaService]:
    service = await MediaService.start(tmp_path_factory.mktemp("media"))
    try:
        yield service
    finally:
        await service.stop()


def _states(job: dict[str, Any]) -> list[str]:
    return [t["state"] for t in job["history"]]


async def test_audio_recording_decodes_with_duration_and_tone(media: MediaService) -> None:
    async with media.client() as http:
        r = await http.post("/recordings", json={"filePath": "rooms/r1/tone", "audio": OPUS})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["recordingId"] == job["id"] and job["state"] == "starting"
        port = job["rtp"]["audio"]["port"]
        tx = await GstProcess.start(*opus_sender(port, freq=440.0, seconds=5.0, pt=100, ssrc=1))
        await tx.wait(30)
        await wait_job(http, job["id"], lambda j: j["stats"]["packets_received"] >= 245)
        done = (await http.post(f"/recordings/{job['id']}/stop")).json()
    assert done["state"] == "completed", done
    assert _states(done) == ["pending", "starting", "running", "stopping", "completed"]
    assert done["time_to_first_packet_s"] is not None and done["time_to_first_packet_s"] < 5
    out = Path(done["output_path"])
    assert out == media.root.resolve() / "rooms/r1/tone.ogg"
    assert not Path(str(out) + ".part").exists()
    (audio,) = probe_streams(out)
    assert audio.codec_name == "opus"
    assert audio.duration is not None and abs(audio.duration - 5.0) <= 0.3, audio.duration
    pcm = decode_audio(out)
    freq = dominant_frequency(pcm[4800:-4800], 48000)
    log.info(
        "measured: audio rec %.3f s, %.2f Hz, first packet %.3f s",
        audio.duration,
        freq,
        done["time_to_first_packet_s"],
    )
    assert abs(freq - 440.0) <= 2.0
    assert done["stats"]["packets_lost"] == 0


async def test_av_recording_has_both_tracks_in_sync(media: MediaService) -> None:
    seconds, fps = 5.0, 30
    async with media.client() as http:
        r = await http.post(
            "/jobs", json={"kind": "record", "filePath": "av", "audio": OPUS, "video": VP8}
        )
        job = r.json()
        rtp = job["rtp"]
        tx = await GstProcess.start(
            *av_sender(rtp["audio"]["port"], rtp["video"]["port"], seconds=seconds, fps=fps)
        )
        await tx.wait(30)
        await wait_job(http, job["id"], lambda j: j["stats"]["packets_received"] >= 400)
        done = (await http.post(f"/jobs/{job['id']}/stop")).json()
    assert done["state"] == "completed", done
    out = Path(done["output_path"])
    assert out.suffix == ".webm"
    streams = {s.codec_type: s for s in probe_streams(out, count_frames=True)}
    audio, video = streams["audio"], streams["video"]
    assert (audio.codec_name, video.codec_name) == ("opus", "vp8")
    # Streamable WebM has no duration header (it is written without seeking back),
    # so the duration is measured by decoding.
    pcm = decode_audio(out)
    assert abs(len(pcm) / 48000 - seconds) <= 0.3, len(pcm) / 48000
    assert video.frames is not None and abs(video.frames - seconds * fps) <= 3, video.frames
    assert (video.width, video.height) == (320, 240)
    assert audio.start_time is not None and video.start_time is not None
    offset = abs(audio.start_time - video.start_time)
    log.info(
        "measured: A/V rec audio %.3f s, %s frames, offset %.3f s",
        len(pcm) / 48000,
        video.frames,
        offset,
    )
    assert offset < 0.1, f"A/V start offset {offset:.3f} s"
    assert abs(dominant_frequency(pcm[4800:-4800], 48000) - 440.0) <= 2.0
    ball = check_ball_video(out)  # the frames are the sent ball, moving: not only a count
    log.info("measured: A/V rec ball %s", ball)
    assert ball.ball_share >= 0.95 and ball.moving_share >= 0.9, ball


async def test_killed_worker_fails_the_job_and_keeps_a_decodable_file(media: MediaService) -> None:
    async with media.client() as http:
        job = (await http.post("/recordings", json={"filePath": "killed", "audio": OPUS})).json()
        tx = await GstProcess.start(
            *opus_sender(job["rtp"]["audio"]["port"], freq=440.0, seconds=20.0, pt=100, ssrc=2)
        )
        await wait_job(http, job["id"], lambda j: j["state"] == "running")
        await asyncio.sleep(3.0)  # let ~3 s of audio be recorded before the kill
        running = (await http.get(f"/jobs/{job['id']}")).json()
        os.kill(job["pid"], signal.SIGKILL)
        failed = await wait_job(http, job["id"], lambda j: j["state"] == "failed")
        await tx.stop()
    assert "SIGKILL" in failed["error"] and "file kept" in failed["error"]
    out = Path(failed["output_path"])
    (audio,) = probe_streams(out)
    assert audio.codec_name == "opus"
    pcm = decode_audio(out)
    recorded = len(pcm) / 48000
    expected = running["stats"]["duration_s"]
    log.info(
        "measured: killed worker left %.3f s decodable (stats said %.3f s)", recorded, expected
    )
    assert recorded >= 2.0
    assert abs(recorded - expected) <= 1.0 + 1.0, (recorded, expected)  # stats lag up to 1 s
    assert abs(dominant_frequency(pcm[4800:], 48000) - 440.0) <= 2.0
