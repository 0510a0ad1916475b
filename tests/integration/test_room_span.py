"""A room too large for one worker spans workers: routers joined by pipeToRouter.

Real SFU with two workers, real Redis, a real media manager, aiortc peers; a
control plane with room_span_after_peers=2. Audio is checked by FFT both ways
across the routers and in a recording of a participant on the second router.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.peer import MediasoupPeer, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from mediaplane.state.store import StateStore
from tests.support.control import ControlInstance, admin, participant
from tests.support.media import SECRET, MediaService
from tests.support.mediacheck import collect_track_audio, decode_audio, dominant_frequency

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)


async def _tone(track: Any) -> float:
    samples = await collect_track_audio(track, 1.0)
    return dominant_frequency(samples[len(samples) // 4 :], 48000)


async def test_a_large_room_spans_workers_with_pipe_to_router(
    sfu: SfuProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    media = await MediaService.start(tmp_path / "data")
    settings = Settings(
        env="test", data_dir=tmp_path / "data", media_port=media.port, media_secret=SECRET,
        room_span_after_peers=2,
    )  # fmt: skip
    control = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis_server.url)
    room = f"span-{uuid.uuid4().hex[:6]}"
    http = httpx.AsyncClient(
        base_url=control.http, headers={"Authorization": f"Bearer {admin(settings)}"}, timeout=60
    )
    sigs: list[SignalingClient] = []
    peers: dict[str, MediasoupPeer] = {}
    try:
        for name in ("pub", "s1", "s2", "s3"):
            sig = await SignalingClient.connect(control.ws(room), participant(settings, name, room))
            sigs.append(sig)
            joined = await sig.request("join")
            peers[name] = MediasoupPeer(sig, joined["routerRtpCapabilities"])
        record = (await http.get(f"/api/rooms/{room}")).json()
        assert len(record["extra_routers"]) == 1, record
        second_worker = next(iter(record["extra_routers"].values()))
        assert second_worker != record["worker_pid"], record
        assert sorted(sfu.worker_pids) == sorted([record["worker_pid"], second_worker])

        # pub (first router) -> s2 and s3 (second router), through a pipe.
        producer = await peers["pub"].publish(ToneTrack(440.0))
        got = {}
        for name in ("s1", "s2", "s3"):
            _, track = await peers[name].subscribe(producer)
            got[name] = await _tone(track)
        # s3 (second router) -> s1 (first router), the other way.
        producer3 = await peers["s3"].publish(ToneTrack(660.0))
        _, back = await peers["s1"].subscribe(producer3)
        got["s3->s1"] = await _tone(back)

        # The peers really sit on two routers, and media crossed through pipes both ways.
        store = await StateStore.create(redis_server.url)
        try:
            on = {p.identity: p.router_id for p in await store.list_peers(room)}
            second_router = next(iter(record["extra_routers"]))
            assert on == {"pub": None, "s1": None, "s2": second_router, "s3": second_router}, on
            assert await store.get_pipe(room, producer, second_router), "pub not piped to router 2"
            assert await store.get_pipe(room, producer3, record["router_id"]), "s3 not piped back"
            assert await store.get_pipe(room, producer, record["router_id"]) is None
        finally:
            await store.close()
        log.info(
            "measured: routers on workers %d and %d; tones received %s",
            record["worker_pid"], second_worker, {k: round(v, 1) for k, v in got.items()},
        )  # fmt: skip
        assert all(abs(f - 440.0) < 5 for k, f in got.items() if k != "s3->s1"), got
        assert abs(got["s3->s1"] - 660.0) < 5, got

        # A recording (consuming on the first router) of s3, who publishes on the second.
        r = await http.post(
            f"/api/rooms/{room}/recordings", json={"identity": "s3", "video": False}
        )
        assert r.status_code == 202, r.text
        rec_id = r.json()["id"]
        async with asyncio.timeout(20):
            while True:
                rec = (await http.get(f"/api/rooms/{room}/recordings/{rec_id}")).json()
                if rec["state"] == "running":
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)
        done = (await http.post(f"/api/rooms/{room}/recordings/{rec_id}/stop")).json()
        assert done["state"] == "completed", done
        out = tmp_path / "s3.ogg"
        out.write_bytes((await http.get(f"/api/rooms/{room}/recordings/{rec_id}/file")).content)
        pcm = decode_audio(out)
        freq = dominant_frequency(pcm[12000:-12000], 48000)
        log.info("measured: recording of the second router's publisher %.2f Hz, %.2f s",
                 freq, len(pcm) / 48000)  # fmt: skip
        assert abs(freq - 660.0) < 5

        # Closing the piped producer closes its consumers on the other router.
        await sigs[3].request("closeProducer", {"producerId": producer3})
        ev = await sigs[1].wait_event("consumerClosed", lambda d: d["producerId"] == producer3, 5)
        assert ev["producerId"] == producer3
    finally:
        for p in peers.values():
            await p.close()
        for s in sigs:
            await s.close()
        await http.aclose()
        await control.stop()
        await media.stop()
