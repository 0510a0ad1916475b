"""Two media managers registered in Redis behind one control plane.

Real processes: the SFU, two `python -m mediaplane.media` managers with
MEDIAPLANE_MEDIA_DISCOVERY=redis (each with a CPU budget for one audio
recording, both writing under one shared recordings root), a control plane
with media_discovery=redis, aiortc publishers. Recordings are decoded.
"""

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
from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.integration.test_metrics import scrape
from tests.support.control import ControlInstance, admin, participant
from tests.support.media import SECRET, MediaService
from tests.support.mediacheck import decode_audio, dominant_frequency

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)
TTL_S = 2.0


async def _manager(tmp_path: Path, name: str, redis_url: str, shared_root: Path) -> MediaService:
    return await MediaService.start(
        tmp_path / name,
        budget=1.5,  # an audio recording costs 1 unit: one at a time
        extra_env={
            "MEDIAPLANE_MEDIA_DISCOVERY": "redis",
            "MEDIAPLANE_REDIS_URL": redis_url,
            "MEDIAPLANE_MEDIA_MANAGER_ID": name,
            "MEDIAPLANE_MEDIA_NODE_TTL_S": str(TTL_S),
            "MEDIAPLANE_RECORDINGS_ROOT": str(shared_root),
        },
    )


async def _wait_rec(
    http: httpx.AsyncClient, room: str, rec_id: str, pred: Any, timeout: float = 20
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            rec: dict[str, Any] = (await http.get(f"/api/rooms/{room}/recordings/{rec_id}")).json()
            if pred(rec):
                return rec
            await asyncio.sleep(0.1)


async def _job(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    jobs = (await http.get("/api/media/jobs")).json()
    return next(j for j in jobs if j["id"] == job_id)


@pytest.fixture
async def redis_private(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = await RedisServer.start(tmp_path / "redis", persist=False)
    try:
        yield server
    finally:
        await server.stop()


async def test_jobs_placed_on_managers_with_room_and_a_vanished_manager_fails_its_jobs(
    sfu: SfuProcess, redis_private: RedisServer, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-recordings"
    mm_a = await _manager(tmp_path, "mm-a", redis_private.url, shared)
    mm_b = await _manager(tmp_path, "mm-b", redis_private.url, shared)
    settings = Settings(
        env="test", data_dir=tmp_path / "control", recordings_root=shared,
        media_secret=SECRET, media_discovery="redis",
    )  # fmt: skip
    control = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis_private.url)
    room = f"mm-{uuid.uuid4().hex[:6]}"
    pubs: list[tuple[SignalingClient, MediasoupPeer]] = []
    http = httpx.AsyncClient(
        base_url=control.http, headers={"Authorization": f"Bearer {admin(settings)}"}, timeout=60
    )
    try:
        for identity, freq in (("alice", 440.0), ("bob", 550.0), ("carol", 660.0)):
            sig = await SignalingClient.connect(
                control.ws(room), participant(settings, identity, room)
            )
            joined = await sig.request("join")
            peer = MediasoupPeer(sig, joined["routerRtpCapabilities"])
            pubs.append((sig, peer))
            await peer.publish(ToneTrack(freq=freq))
        health = (await http.get("/api/system")).json()["media"]
        assert sorted(m["manager_id"] for m in health["managers"]) == ["mm-a", "mm-b"], health

        async def record(identity: str) -> httpx.Response:
            return await http.post(
                f"/api/rooms/{room}/recordings", json={"identity": identity, "video": False}
            )

        # One recording per manager; a third finds no room anywhere: 429 with the reasons.
        rec_a = (await record("alice")).json()
        rec_b = (await record("bob")).json()
        refused = await record("carol")
        assert refused.status_code == 429, refused.text
        message = refused.json()["error"]["message"]
        assert "mm-a" in message and "mm-b" in message and "budget" in message, message
        managers = {
            (await _job(http, rec_a["media_job_id"]))["manager"],
            (await _job(http, rec_b["media_job_id"]))["manager"],
        }
        assert managers == {"mm-a", "mm-b"}
        for rec in (rec_a, rec_b):
            await _wait_rec(http, room, rec["id"], lambda x: x["state"] == "running")
        await asyncio.sleep(3.0)

        # alice's recording completes on its manager, which then takes carol's.
        done_a = (await http.post(f"/api/rooms/{room}/recordings/{rec_a['id']}/stop")).json()
        assert done_a["state"] == "completed", done_a
        owner_a = (await _job(http, rec_a["media_job_id"]))["manager"]
        owner = {"mm-a": mm_a, "mm-b": mm_b}[owner_a]
        r = await record("carol")
        assert r.status_code == 202, r.text
        rec_c = r.json()
        assert (await _job(http, rec_c["media_job_id"]))["manager"] == owner_a
        await _wait_rec(http, room, rec_c["id"], lambda x: x["state"] == "running")

        # That manager vanishes: carol's recording fails with the reason.
        t0 = time.monotonic()
        await owner.kill()
        failed = await _wait_rec(http, room, rec_c["id"], lambda x: x["state"] == "failed", 15)
        t_failed = time.monotonic() - t0
        reason = failed["history"][-1]["reason"]
        assert f"media manager {owner_a} disappeared" in reason, failed
        job_c = await _job(http, rec_c["media_job_id"])
        assert job_c["state"] == "failed" and owner_a in job_c["error"], job_c
        health = (await http.get("/api/system")).json()["media"]
        assert owner_a in health["down"], health
        m = await scrape(http, "")
        assert m.get("mediaplane_control_media_managers", state="up") == 1, m.samples
        assert m.get("mediaplane_control_media_managers", state="down") == 1, m.samples
        assert m.get("mediaplane_control_media_jobs_refused_total") == 1, m.samples
        survivor_id = "mm-b" if owner_a == "mm-a" else "mm-a"
        capacity = m.get("mediaplane_control_media_manager_units", manager=survivor_id,
                         what="capacity")  # fmt: skip
        used = m.get("mediaplane_control_media_manager_units", manager=survivor_id, what="used")
        assert capacity == 1.5 and used == 1.0, (capacity, used)  # bob's audio recording
        assert [m["manager_id"] for m in health["managers"]] != [owner_a]

        # alice's file, finished by the vanished manager, is still served and decodes.
        got = await http.get(f"/api/rooms/{room}/recordings/{rec_a['id']}/file")
        assert got.status_code == 200
        out_a = tmp_path / "alice.ogg"
        out_a.write_bytes(got.content)
        pcm = decode_audio(out_a)
        span_a = done_a["stopped_at"] - done_a["started_at"]
        freq_a = dominant_frequency(pcm[12000:-12000], 48000)
        assert abs(freq_a - 440.0) < 5 and abs(len(pcm) / 48000 - span_a) < 0.5

        # bob's recording on the survivor finishes normally.
        done_b = (await http.post(f"/api/rooms/{room}/recordings/{rec_b['id']}/stop")).json()
        assert done_b["state"] == "completed", done_b
        out_b = tmp_path / "bob.ogg"
        out_b.write_bytes(
            (await http.get(f"/api/rooms/{room}/recordings/{rec_b['id']}/file")).content
        )
        freq_b = dominant_frequency(decode_audio(out_b)[12000:-12000], 48000)
        assert abs(freq_b - 550.0) < 5
        log.info(
            "measured: jobs on mm-a/mm-b, third refused 429; %s killed, its job failed after "
            "%.2f s (TTL %.1f s); its finished file decodes %.2f Hz (%.2f s for %.2f s); "
            "survivor's recording %.2f Hz",
            owner_a, t_failed, TTL_S, freq_a, len(pcm) / 48000, span_a, freq_b,
        )  # fmt: skip
        assert t_failed < TTL_S + 3.0

        # No manager left: 429 saying so.
        other = mm_b if owner is mm_a else mm_a
        await other.kill()
        async with asyncio.timeout(10):
            while True:
                if not (await http.get("/api/system")).json()["media"]["managers"]:
                    break
                await asyncio.sleep(0.2)
        none_up = await record("alice")
        assert none_up.status_code == 429, none_up.text
        assert "no media manager is up" in none_up.json()["error"]["message"]
    finally:
        for sig, peer in pubs:
            await peer.close()
            await sig.close()
        await http.aclose()
        await control.stop()
        await mm_a.stop()
        await mm_b.stop()
