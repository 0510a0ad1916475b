"""Stream out through a real nginx-rtmp server: what the server received is decoded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.state.redis_server import free_tcp_port
from tests.support.gst import GstProcess, tile_sender
from tests.support.media import OPUS, VP8, MediaService, wait_job
from tests.support.mediacheck import decode_audio, dominant_frequency, probe_streams
from tests.support.nginx_rtmp import NginxRtmp
from tests.support.sources import silent_tcp_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)


@pytest.fixture
async def nginx(tmp_path: Path) -> AsyncIterator[NginxRtmp]:
    server = await NginxRtmp.start(tmp_path / "nginx")
    try:
        yield server
    finally:
        await server.stop()


def _check_flv(path: Path, seconds: float, tone: float) -> tuple[float, float]:
    streams = {s.codec_type: s for s in probe_streams(path)}
    assert streams["video"].codec_name == "h264", streams
    assert streams["audio"].codec_name == "aac", streams
    duration = streams["audio"].duration or 0.0
    assert abs(duration - seconds) < 1.5, duration
    pcm = decode_audio(path)
    freq = dominant_frequency(pcm[48000 : 48000 * 3], 48000)
    assert abs(freq - tone) < 3, freq
    return duration, freq


async def _stream_with_sender(
    http: httpx.AsyncClient, rtmp_url: str, *, seconds: float, color: int, ssrc_base: int
) -> tuple[dict[str, Any], GstProcess]:
    """A participant stream job to `rtmp_url` and its sender (a 440 Hz tone and `color`)."""
    body = {"kind": "stream", "rtmpUrl": rtmp_url, "audio": OPUS, "video": VP8}
    r = await http.post("/jobs", json=body)
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    tx = await GstProcess.start(
        *tile_sender(job["rtp"]["audio"]["port"], job["rtp"]["video"]["port"],
                     seconds=seconds, freq=440.0, color=color, ssrc_base=ssrc_base)
    )  # fmt: skip
    return job, tx


async def test_participant_stream_reaches_nginx(media: MediaService, nginx: NginxRtmp) -> None:
    async with media.client() as http:
        job, tx = await _stream_with_sender(
            http, nginx.url("alice"), seconds=6, color=0xFF0000, ssrc_base=10
        )
        await wait_job(http, job["id"], lambda j: j["state"] == "running")
        await tx.wait(30)
        done = (await http.post(f"/jobs/{job['id']}/stop")).json()
    assert done["state"] == "completed", done
    flv = await nginx.wait_recorded("alice")
    duration, freq = _check_flv(flv, 6.0, 440.0)
    log.info("measured: participant RTMP on nginx %.3f s (sent 6 s), %.2f Hz", duration, freq)


async def test_composite_stream_reaches_nginx(media: MediaService, nginx: NginxRtmp) -> None:
    inputs = [
        {"id": "a", "participant": "alice", "name": "Alice", "stream": OPUS},
        {"id": "v", "participant": "alice", "name": "Alice", "stream": VP8},
    ]
    body = {
        "kind": "composite", "rtmpUrl": nginx.url("room"), "width": 640, "height": 360,
        "fps": 15, "videoKbps": 800, "inputs": inputs,
    }  # fmt: skip
    async with media.client() as http:
        r = await http.post("/jobs", json=body)
        assert r.status_code == 202, r.text
        job = r.json()
        started = time.monotonic()
        tx = await GstProcess.start(
            *tile_sender(job["rtp"]["a"]["port"], job["rtp"]["v"]["port"],
                         seconds=6, freq=550.0, color=0x00FF00, ssrc_base=20)
        )  # fmt: skip
        await tx.wait(30)
        done = (await http.post(f"/jobs/{job['id']}/stop")).json()
        ran = time.monotonic() - started
    assert done["state"] == "completed", done
    flv = await nginx.wait_recorded("room")
    duration, freq = _check_flv(flv, ran, 550.0)
    log.info("measured: composite RTMP on nginx %.3f s (ran %.3f s), %.2f Hz", duration, ran, freq)


async def test_unreachable_rtmp_server_is_a_failed_job(media: MediaService) -> None:
    # A port nobody listens on.
    url = f"rtmp://127.0.0.1:{free_tcp_port()}/live/nobody"
    for body in (
        {"kind": "stream", "rtmpUrl": url, "audio": OPUS},
        {"kind": "composite", "rtmpUrl": url, "width": 320, "height": 180, "fps": 10},
    ):
        async with media.client() as http:
            t0 = time.monotonic()
            r = await http.post("/jobs", json=body)
            assert r.status_code == 202, r.text
            job = await wait_job(http, r.json()["id"], lambda j: j["state"] == "failed", 20)
            took = time.monotonic() - t0
        reason = str(job["error"])
        assert "refused" in reason.lower(), reason  # the reason, not only the element's name
        assert took < 10, took  # the refusal is seen at once, not after a timeout
        log.info("measured: %s to a closed RTMP port failed in %.2f s: %s", body["kind"], took,
                 reason[:120])  # fmt: skip


async def test_rtmp_server_that_hangs_or_dies_fails_the_job(
    media: MediaService, nginx: NginxRtmp
) -> None:
    """Not a hang: a server that accepts TCP and never speaks RTMP, and one that dies
    mid-stream, each end the job as failed with a reason, in bounded time."""
    async with silent_tcp_server() as port, media.client() as http:
        t0 = time.monotonic()
        r = await http.post(
            "/jobs", json={"kind": "stream", "rtmpUrl": f"rtmp://127.0.0.1:{port}/live/x",
                           "audio": OPUS},
        )  # fmt: skip
        assert r.status_code == 202, r.text
        silent = await wait_job(http, r.json()["id"], lambda j: j["state"] == "failed", 30)
        t_silent = time.monotonic() - t0
    assert silent["error"], silent
    assert t_silent < 20, t_silent

    async with media.client() as http:
        job, tx = await _stream_with_sender(
            http, nginx.url("dies"), seconds=30, color=0x00FF00, ssrc_base=40
        )
        try:
            await wait_job(http, job["id"], lambda j: j["state"] == "running")
            await asyncio.sleep(3)
            nginx.proc.kill()  # the server goes away mid-stream
            t0 = time.monotonic()
            died = await wait_job(http, job["id"], lambda j: j["state"] == "failed", 30)
            t_died = time.monotonic() - t0
        finally:
            await tx.stop()
    assert died["error"], died
    assert t_died < 20, t_died
    log.info(
        "measured: RTMP server that never answers: failed after %.2f s (%s); server killed "
        "mid-stream: failed after %.2f s (%s)",
        t_silent, str(silent["error"])[:100], t_died, str(died["error"])[:100],
    )  # fmt: skip
