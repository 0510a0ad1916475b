"""Redis restarts, hostile signaling, emptied rooms and dead SFU workers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from mediaplane.control.signaling.session import HANDLERS
from mediaplane.peer import MediasoupPeer, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient, SignalingReplyError
from mediaplane.settings import Settings
from mediaplane.sfu import SfuClient, SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.support.control import ControlInstance, admin, participant
from tests.support.mediacheck import collect_track_audio, dominant_frequency

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


async def _poll(check: Any, timeout: float) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.1)


async def test_redis_restart_resyncs_and_new_joins_work(
    settings: Settings, sfu: SfuProcess, tmp_path: Path
) -> None:
    redis = await RedisServer.start(tmp_path / "r1", persist=False)
    port = redis.port
    inst = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis.url)
    room = f"redis-{uuid.uuid4().hex[:6]}"
    sig_a = await SignalingClient.connect(inst.ws(room), participant(settings, "alice", room))
    joined = await sig_a.request("join")
    alice = MediasoupPeer(sig_a, joined["routerRtpCapabilities"])
    producer_id = await alice.publish(ToneTrack(freq=660.0))
    http = httpx.AsyncClient(
        base_url=inst.http, headers={"Authorization": f"Bearer {admin(settings)}"}
    )
    bob: MediasoupPeer | None = None
    sig_b: SignalingClient | None = None
    try:
        await redis.kill()  # no persistence: the new server starts empty
        redis = await RedisServer.start(
            tmp_path / "r2", port=port, persist=False, password=redis.password
        )
        t0 = time.monotonic()

        async def resynced() -> bool:
            r = await http.get(f"/api/rooms/{room}/participants")
            return r.status_code == 200 and any(
                t["producerId"] == producer_id for p in r.json() for t in p["tracks"]
            )

        await _poll(resynced, 5.0)
        sig_b = await SignalingClient.connect(inst.ws(room), participant(settings, "bob", room))
        joined_b = await sig_b.request("join")
        elapsed = time.monotonic() - t0
        log.info("measured: state back and a new join %.3f s after the Redis restart", elapsed)
        assert elapsed < 5.0, elapsed
        assert [p["producerId"] for p in joined_b["producers"]] == [producer_id]
        bob = MediasoupPeer(sig_b, joined_b["routerRtpCapabilities"])
        _, track = await bob.subscribe(producer_id)
        pcm = (await collect_track_audio(track, 2.0))[24000:]
        assert abs(dominant_frequency(pcm, 48000) - 660.0) <= 5.0
        # Events flow again between the peers after the restart.
        await sig_a.request("pauseProducer", {"producerId": producer_id})
        await sig_b.wait_event("producerPaused", lambda d: d["producerId"] == producer_id)
    finally:
        await http.aclose()
        await alice.close()
        if bob:
            await bob.close()
        if sig_b:
            await sig_b.close()
        await sig_a.close()
        await inst.stop()
        await redis.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["transportId", "producerId", "consumerId", "direction", "kind", "rtpParameters",
     "rtpCapabilities", "dtlsParameters", "source", "displayName", "spatialLayer"]
)  # fmt: skip
requests = st.fixed_dictionaries(
    {
        "id": st.integers(min_value=-5, max_value=2**60) | st.text(max_size=5),
        "method": st.sampled_from([*HANDLERS, "nope", "", "__init__"]) | st.text(max_size=10),
        "data": st.dictionaries(field_names, json_values, max_size=5) | json_values,
    }
)
frames = (
    requests.map(json.dumps)
    | st.text(max_size=200)
    | json_values.map(json.dumps)
    | st.just("{" * 5000)
    # Large but under the 64 KiB frame limit (a larger frame closes the socket with 1009:
    # test_signaling_frame_size.py); its display name is far over its 128 characters.
    | st.just(json.dumps({"id": 1, "method": "join", "data": {"displayName": "x" * 60_000}}))
)


def _generate_frames(n: int) -> list[str]:
    out: list[str] = []

    @given(frame=frames)
    @hsettings(
        max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    def collect(frame: str) -> None:
        out.append(frame)

    collect()
    return out


async def test_fuzzed_signaling_never_breaks_the_socket_or_leaks(
    settings: Settings, control: ControlInstance, client: SfuClient
) -> None:
    before = await client.server_stats()
    room = f"fuzz-{uuid.uuid4().hex[:6]}"
    sig = await SignalingClient.connect(control.ws(room), participant(settings, "fuzzer", room))
    sig.timeout = 5
    await sig.request("join")
    await sig.request("createTransport", {"direction": "send"})
    frames_sent = _generate_frames(400)
    for frame in frames_sent:
        await sig.send_raw(frame)
        # Pace under the rate limit so every frame is judged on its content.
        await asyncio.sleep(0.025)
    # Every frame got an answer; the socket is still usable. (The fuzzer may have
    # sent a valid `leave` or `join`, so start from a known state.)
    assert not sig.closed
    await sig.request("leave")
    await sig.request("join")
    stats = await sig.request("getStats")
    assert "transports" in stats
    with pytest.raises(SignalingReplyError) as info:
        await sig.request("consume", {"transportId": "x", "producerId": "y", "rtpCapabilities": {}})
    assert info.value.code in ("not_found", "invalid_state")
    await sig.close()

    async def released() -> bool:
        now = await client.server_stats()
        return (now.transports, now.producers, now.consumers) == (
            before.transports,
            before.producers,
            before.consumers,
        )

    await _poll(released, 5.0)


async def test_rate_limit_answers_and_keeps_the_connection(
    settings: Settings, control: ControlInstance
) -> None:
    room = f"rate-{uuid.uuid4().hex[:6]}"
    url = control.ws(room) + "?access_token=" + participant(settings, "flood", room)
    async with connect(url) as ws:
        n = 1000
        for i in range(n):
            await ws.send(json.dumps({"id": i, "method": "getStats", "data": {}}))
        replies = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(n)]
        codes = [r["error"]["code"] for r in replies]
        assert {r["id"] for r in replies} == set(range(n))
        assert codes.count("rate_limited") > 0
        assert codes.count("invalid_state") >= 100  # the burst was served
        await asyncio.sleep(1.0)
        await ws.send(json.dumps({"id": n, "method": "getStats", "data": {}}))
        after = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert after["error"]["code"] == "invalid_state"  # answered again, not limited


@pytest.fixture
async def own_stack(
    settings: Settings, redis_server: RedisServer
) -> AsyncIterator[tuple[SfuProcess, ControlInstance]]:
    sfu = await SfuProcess.start(settings, port=0, num_workers=1)
    inst = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis_server.url)
    try:
        yield sfu, inst
    finally:
        await inst.stop()
        await sfu.stop()


async def test_worker_death_tells_peers_to_rejoin_and_rejoin_works(
    settings: Settings, own_stack: tuple[SfuProcess, ControlInstance]
) -> None:
    sfu, inst = own_stack
    room = f"died-{uuid.uuid4().hex[:6]}"
    sig = await SignalingClient.connect(inst.ws(room), participant(settings, "dora", room))
    joined = await sig.request("join")
    peer = MediasoupPeer(sig, joined["routerRtpCapabilities"])
    await peer.publish(ToneTrack())
    os.kill(sfu.worker_pids[0], signal.SIGKILL)
    event = await sig.wait_event("rejoin", timeout=3)
    assert "restarted" in event["reason"]
    await peer.close()
    again = await sig.request("join")
    peer2 = MediasoupPeer(sig, again["routerRtpCapabilities"])
    assert await peer2.publish(ToneTrack())
    await peer2.close()
    await sig.close()


async def test_empty_room_router_is_released(
    settings: Settings, control: ControlInstance, client: SfuClient
) -> None:
    room = f"empty-{uuid.uuid4().hex[:6]}"
    auth = {"Authorization": f"Bearer {admin(settings)}"}
    async with httpx.AsyncClient(base_url=control.http, headers=auth) as http:
        r = await http.post("/api/rooms", json={"name": room, "empty_timeout_s": 1})
        assert r.status_code == 201
        sig = await SignalingClient.connect(control.ws(room), participant(settings, "eve", room))
        await sig.request("join")
        router_id = (await http.get(f"/api/rooms/{room}")).json()["router_id"]
        assert router_id
        routers_before = (await client.server_stats()).routers
        await sig.close()

        async def released() -> bool:
            body = (await http.get(f"/api/rooms/{room}")).json()
            return body["router_id"] is None

        await _poll(released, 5.0)
        assert (await client.server_stats()).routers == routers_before - 1
