"""Media manager: restarts, bad input, admission, many jobs, the other job kinds."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.gst import GstProcess, av_sender, opus_sender
from tests.support.media import OPUS, VP8, MediaService, wait_job
from tests.support.mediacheck import decode_audio, dominant_frequency, probe_streams

pytestmark = pytest.mark.integration


def worker_pids(data_dir: Path | None = None) -> set[int]:
    """Worker processes (of the manager using `data_dir`, when given: other test
    runs on the machine have their own)."""
    out = subprocess.run(
        ["pgrep", "-af", "mediaplane.media.worker"], capture_output=True, text=True, check=False
    ).stdout
    return {
        int(line.split()[0])
        for line in out.splitlines()
        if data_dir is None or str(data_dir) in line
    }


async def test_killed_manager_restarts_and_reconciles(tmp_path: Path) -> None:
    data = tmp_path / "data"
    media = await MediaService.start(data)
    http = media.client()
    job = (await http.post("/recordings", json={"filePath": "survivor", "audio": OPUS})).json()
    tx = await GstProcess.start(
        *opus_sender(job["rtp"]["audio"]["port"], freq=523.0, seconds=6.0, pt=100, ssrc=3)
    )
    await wait_job(http, job["id"], lambda j: j["state"] == "running")
    await http.aclose()
    await media.kill()  # kill -9 the manager; the worker lives on in its own session
    assert job["pid"] in worker_pids()
    await tx.wait(30)

    media = await MediaService.start(data, port=media.port)
    try:
        async with media.client() as http:
            settled = (await http.get(f"/jobs/{job['id']}")).json()
            health = (await http.get("/healthz")).json()
    finally:
        await media.stop()
    assert settled["state"] == "completed", settled
    assert "manager restarted" in settled["history"][-1]["reason"]
    assert any(job["id"] in line for line in health["reconciled"])
    assert job["pid"] not in worker_pids()
    out = Path(settled["output_path"])
    assert out.exists() and not Path(str(out) + ".part").exists()
    pcm = decode_audio(out)
    assert abs(len(pcm) / 48000 - 6.0) <= 0.5
    assert abs(dominant_frequency(pcm[4800:-4800], 48000) - 523.0) <= 2.0


BAD: list[tuple[str, dict[str, Any], int]] = [
    ("/recordings", {"filePath": "../escape", "audio": OPUS}, 400),
    ("/recordings", {"filePath": "/etc/passwd", "audio": OPUS}, 400),
    ("/recordings", {"filePath": "a/../../b", "audio": OPUS}, 400),
    ("/recordings", {"filePath": "a\\b", "audio": OPUS}, 400),
    ("/recordings", {"filePath": "", "audio": OPUS}, 400),
    ("/recordings", {"filePath": "x;rm -rf", "audio": OPUS}, 400),
    ("/recordings", {"filePath": "link/inside", "audio": OPUS}, 400),
    ("/recordings", {"filePath": "ok", "audio": {**OPUS, "mimeType": "audio/AAC"}}, 422),
    ("/recordings", {"filePath": "ok", "audio": {**OPUS, "payloadType": 300}}, 422),
    ("/recordings", {"filePath": "ok", "audio": VP8}, 422),
    ("/recordings", {"filePath": "ok"}, 422),
    ("/jobs", {"kind": "nope"}, 422),
    ("/jobs", {"kind": "stream", "audio": OPUS, "rtmpUrl": "http://x"}, 422),
    ("/jobs", {"kind": "inject", "sourcePath": "x.ogg",
               "audio": {"ip": "127.0.0.1", "port": 0, "payloadType": 100, "ssrc": 1}}, 422),
    ("/jobs", {"kind": "inject", "sourcePath": "x.ogg",
               "audio": {"ip": "127.0.0.1", "port": 70000, "payloadType": 100, "ssrc": 1}}, 422),
    ("/jobs", {"kind": "inject", "sourcePath": "missing.ogg",
               "audio": {"ip": "127.0.0.1", "port": 5000, "payloadType": 100, "ssrc": 1}}, 400),
]  # fmt: skip


async def test_bad_input_is_refused_and_starts_nothing(media: MediaService, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (media.root / "link").symlink_to(outside)
    before = worker_pids(media.data_dir)
    async with media.client() as http:
        for path, body, status in BAD:
            r = await http.post(path, json=body)
            assert r.status_code == status, (body, r.text)
            assert r.json()["error"]["message"], body
        assert (await http.get("/jobs")).json() == []
        r = await http.post("/jobs/nope/stop")
        assert r.status_code == 404
        r = await http.post(
            "/jobs",
            content=b"{" + b" " * 100_000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        async with media.client() as anon:
            anon.headers.pop("Authorization")
            assert (await anon.get("/jobs")).status_code == 401
            anon.headers["Authorization"] = "Bearer wrong"
            assert (
                await anon.post("/recordings", json={"filePath": "x", "audio": OPUS})
            ).status_code == 401
        job = (await http.post("/recordings", json={"filePath": "dup", "audio": OPUS})).json()
        assert (
            await http.post("/recordings", json={"filePath": "dup", "audio": OPUS})
        ).status_code == 409
        assert (await http.post(f"/jobs/{job['id']}/stop")).status_code == 200
        r = await http.post(f"/jobs/{job['id']}/stop")
        assert r.status_code == 409 and "already" in r.json()["error"]["message"]
    assert worker_pids(media.data_dir) == before
    assert list(outside.iterdir()) == []


async def test_admission_refuses_past_the_budget(tmp_path: Path) -> None:
    media = await MediaService.start(tmp_path / "data", budget=2.5)
    try:
        async with media.client() as http:
            a = await http.post("/recordings", json={"filePath": "a", "audio": OPUS})
            b = await http.post("/recordings", json={"filePath": "b", "audio": OPUS})
            c = await http.post("/recordings", json={"filePath": "c", "audio": OPUS})
            assert (a.status_code, b.status_code, c.status_code) == (202, 202, 429)
            assert "budget" in c.json()["error"]["message"]
            await http.post(f"/jobs/{a.json()['id']}/stop")
            d = await http.post("/recordings", json={"filePath": "d", "audio": OPUS})
            assert d.status_code == 202
    finally:
        await media.stop()


async def test_fifty_jobs_start_and_stop_leaving_nothing(media: MediaService) -> None:
    before = worker_pids(media.data_dir)
    async with media.client() as http:
        starts = await asyncio.gather(
            *(
                http.post("/recordings", json={"filePath": f"many/{i}", "audio": OPUS})
                for i in range(50)
            )
        )
        assert [r.status_code for r in starts] == [202] * 50
        jobs = [r.json() for r in starts]
        ports = {j["rtp"]["audio"]["port"] for j in jobs} | {
            j["rtp"]["audio"]["rtcpPort"] for j in jobs
        }
        stops = await asyncio.gather(*(http.post(f"/jobs/{j['id']}/stop") for j in jobs))
        assert {r.json()["state"] for r in stops} == {"completed"}
    assert worker_pids(media.data_dir) == before
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    bound = {int(line.split()[1].split(":")[1], 16) for line in lines}
    assert not ports & bound
    assert list(media.root.rglob("*.part")) == []


async def test_transcode_and_inject_and_hls(media: MediaService) -> None:
    async with media.client() as http:
        # A source A/V file, recorded by the manager itself.
        rec = (
            await http.post(
                "/jobs", json={"kind": "record", "filePath": "src", "audio": OPUS, "video": VP8}
            )
        ).json()
        tx = await GstProcess.start(
            *av_sender(
                rec["rtp"]["audio"]["port"], rec["rtp"]["video"]["port"], seconds=3.0, freq=880.0
            )
        )
        await tx.wait(30)
        await wait_job(http, rec["id"], lambda j: j["stats"]["packets_received"] >= 240)
        await http.post(f"/jobs/{rec['id']}/stop")

        tc = (
            await http.post(
                "/jobs",
                json={
                    "kind": "transcode",
                    "sourcePath": "src.webm",
                    "filePath": "out",
                    "format": "mp4-h264-aac",
                },
            )
        ).json()
        tc = await wait_job(http, tc["id"], lambda j: j["state"] in ("completed", "failed"), 60)
        assert tc["state"] == "completed", tc
        streams = {s.codec_type: s for s in probe_streams(Path(tc["output_path"]))}
        assert (streams["audio"].codec_name, streams["video"].codec_name) == ("aac", "h264")
        pcm = decode_audio(Path(tc["output_path"]))
        assert abs(dominant_frequency(pcm[4800:-4800], 48000) - 880.0) <= 3.0

        # Stream the RTP of a sender out as HLS; the segments decode.
        hls = (
            await http.post(
                "/jobs", json={"kind": "stream", "audio": OPUS, "video": VP8, "hlsPath": "live"}
            )
        ).json()
        tx = await GstProcess.start(
            *av_sender(hls["rtp"]["audio"]["port"], hls["rtp"]["video"]["port"], seconds=5.0)
        )
        await tx.wait(30)
        await wait_job(http, hls["id"], lambda j: j["stats"]["packets_received"] >= 400)
        await http.post(f"/jobs/{hls['id']}/stop")
        playlist = media.root / "live" / "playlist.m3u8"
        assert "#EXTINF" in playlist.read_text()
        streams = {s.codec_type: s for s in probe_streams(playlist)}
        assert (streams["audio"].codec_name, streams["video"].codec_name) == ("aac", "h264")

        # Inject the recorded file as RTP into a receiver (the SFU's role), decoded there.
        from tests.support.gst import free_udp_port, opus_ogg_receiver

        port = free_udp_port()
        out = media.root / "injected.ogg"
        rx = await GstProcess.start(*opus_ogg_receiver(port, pt=100, out=out))
        inj = (
            await http.post(
                "/jobs",
                json={
                    "kind": "inject",
                    "sourcePath": "src.webm",
                    "audio": {"ip": "127.0.0.1", "port": port, "payloadType": 100, "ssrc": 1234},
                },
            )
        ).json()
        inj = await wait_job(http, inj["id"], lambda j: j["state"] in ("completed", "failed"), 30)
        assert inj["state"] == "completed", inj
        await rx.stop()
        pcm = decode_audio(out)
        assert abs(len(pcm) / 48000 - 3.0) <= 0.5
        assert abs(dominant_frequency(pcm[4800:-4800], 48000) - 880.0) <= 3.0
    assert os.path.exists(media.root / "src.webm")
