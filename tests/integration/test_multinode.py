"""Two SFU nodes and two control-plane instances, each pair in its own network
namespace (ip netns + veth on a private bridge), sharing one real Redis.

Each node is `python -m mediaplane.sfu.node` (the real Node SFU with the real
mediasoup worker, heartbeating into Redis); each control plane is
`python -m mediaplane.control` with MEDIAPLANE_SFU_DISCOVERY=redis. aiortc peers
in the test's namespace reach both over the bridge. Media is checked by
decoding it (FFT of the received tone).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.peer import MediasoupPeer, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from mediaplane.sfu.process import worker_binary
from mediaplane.state.redis_server import RedisServer
from tests.support import netns
from tests.support.control import admin, participant
from tests.support.media import SECRET, MediaService
from tests.support.mediacheck import collect_track_audio, decode_audio, dominant_frequency

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(netns.available() is not None, reason=str(netns.available())),
]
log = logging.getLogger(__name__)
CONTROL_PORT = 8080
SFU_PORT = 4443
NODE_TTL_S = 2.0


@dataclass
class NodeProc:
    node_id: str
    ns_index: int
    agent: asyncio.subprocess.Process
    sfu_pid: int

    def kill(self) -> None:
        """Power-off: the agent (heartbeat) and the SFU with its workers, no goodbye."""
        for pgid in (self.agent.pid, self.sfu_pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


@dataclass
class Cluster:
    lan: netns.Lan
    redis: RedisServer
    media: MediaService
    nodes: list[NodeProc]
    controls: list[asyncio.subprocess.Process]
    logs: Path  # control-{i}.log and node-{i}.log: the services' stderr

    def http(self, i: int) -> str:
        return f"http://{self.lan.ip(i)}:{CONTROL_PORT}"

    def ws(self, i: int, room: str) -> str:
        return f"ws://{self.lan.ip(i)}:{CONTROL_PORT}/ws/rooms/{room}"


def _env(
    settings: Settings, lan: netns.Lan, i: int, redis_url: str, media: MediaService | None = None
) -> dict[str, str]:
    ip = lan.ip(i)
    extra = {}
    if media is not None:
        extra = {
            "MEDIAPLANE_MEDIA_HOST": media.host,
            "MEDIAPLANE_MEDIA_PORT": str(media.port),
            "MEDIAPLANE_MEDIA_SECRET": SECRET,
            "MEDIAPLANE_RECORDINGS_ROOT": str(media.root),
        }
    return {
        **os.environ,
        "MEDIAPLANE_ENV": "test",
        "MEDIAPLANE_REDIS_URL": redis_url,
        "MEDIAPLANE_SFU_HOST": ip,
        "MEDIAPLANE_SFU_PORT": str(SFU_PORT),
        "MEDIAPLANE_SFU_NUM_WORKERS": "1",
        "MEDIAPLANE_RTC_LISTEN_IP": ip,
        "MEDIAPLANE_PLAIN_LISTEN_IP": ip,
        "MEDIAPLANE_SFU_NODE_ID": f"node-{'ab'[i]}",
        "MEDIAPLANE_SFU_NODE_TTL_S": str(NODE_TTL_S),
        "MEDIAPLANE_SFU_DISCOVERY": "redis",
        "MEDIAPLANE_HOST": ip,
        "MEDIAPLANE_PORT": str(CONTROL_PORT),
        # placement is under test here, over plain http on the private LAN; https off
        # loopback (the default) is tested in test_reach_lan
        "MEDIAPLANE_TLS": "off",
        "MEDIASOUP_WORKER_BIN": str(worker_binary(settings)),
        "PYTHONUNBUFFERED": "1",
        "MEDIAPLANE_LOG_FORMAT": "json",
        **extra,
    }


async def _start_node(
    settings: Settings, lan: netns.Lan, i: int, redis_url: str, logs: Path
) -> NodeProc:
    proc = await lan.exec(
        i,
        [sys.executable, "-m", "mediaplane.sfu.node"],
        _env(settings, lan, i, redis_url),
        log_path=str(logs / f"node-{i}.log"),
    )
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError(
                    f"node {i} exited: {(logs / f'node-{i}.log').read_text()[-2000:]}"
                )
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if msg.get("event") == "ready":
                    return NodeProc(str(msg["node"]), i, proc, int(msg["sfuPid"]))


async def _start_control(
    settings: Settings, lan: netns.Lan, i: int, redis_url: str, logs: Path, media: MediaService
) -> asyncio.subprocess.Process:
    proc = await lan.exec(
        i,
        [sys.executable, "-m", "mediaplane.control"],
        _env(settings, lan, i, redis_url, media),
        log_path=str(logs / f"control-{i}.log"),
    )
    url = f"http://{lan.ip(i)}:{CONTROL_PORT}/readyz"
    async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(40):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(
                    f"control {i} exited: {(logs / f'control-{i}.log').read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.TransportError):
                r = await http.get(url)
                if r.status_code == 200 and len(r.json()["sfuNodes"]) == 2:
                    return proc
            await asyncio.sleep(0.2)


@pytest.fixture
async def cluster(settings: Settings, tmp_path: Path) -> AsyncIterator[Cluster]:
    lan = netns.Lan.create(2)
    redis: RedisServer | None = None
    media: MediaService | None = None
    nodes: list[NodeProc] = []
    controls: list[asyncio.subprocess.Process] = []
    try:
        redis = await RedisServer.start(tmp_path / "redis", persist=False, bind=lan.host_ip)
        # One media manager on the bridge (the test's namespace) records for both.
        media = await MediaService.start(tmp_path / "media", host=lan.host_ip)
        for i in range(2):
            nodes.append(await _start_node(settings, lan, i, redis.url, tmp_path))
        for i in range(2):
            controls.append(await _start_control(settings, lan, i, redis.url, tmp_path, media))
        yield Cluster(lan, redis, media, nodes, controls, tmp_path)
    finally:
        for proc in controls:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in controls:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.agent.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(node.agent.wait(), 10)
            node.kill()
        for proc in [*controls, *(n.agent for n in nodes)]:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if media is not None:
            await media.stop()
        if redis is not None:
            await redis.stop()
        lan.close()


async def _room_node(http: httpx.AsyncClient, room: str) -> str:
    r = await http.get(f"/api/rooms/{room}")
    assert r.status_code == 200, r.text
    return str(r.json()["node_id"])


async def _wait_rec(
    http: httpx.AsyncClient, room: str, rec_id: str, states: tuple[str, ...]
) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            rec: dict[str, Any] = (await http.get(f"/api/rooms/{room}/recordings/{rec_id}")).json()
            if rec["state"] in states:
                return rec
            await asyncio.sleep(0.1)


async def _tone(track: Any, seconds: float = 1.0) -> float:
    samples = await collect_track_audio(track, seconds)
    return dominant_frequency(samples[len(samples) // 4 :], 48000)


async def test_rooms_spread_and_a_dead_node_moves_its_peers(
    settings: Settings, cluster: Cluster
) -> None:
    auth = {"Authorization": f"Bearer {admin(settings)}"}
    http_a = httpx.AsyncClient(base_url=cluster.http(0), headers=auth, timeout=10)
    http_b = httpx.AsyncClient(base_url=cluster.http(1), headers=auth, timeout=10)
    sigs: list[SignalingClient] = []
    peers: list[MediasoupPeer] = []
    try:
        # Rooms spread: four rooms joined alternately through both control planes.
        placed: dict[str, str] = {}
        for n in range(4):
            room = f"spread-{n}-{uuid.uuid4().hex[:4]}"
            sig = await SignalingClient.connect(
                cluster.ws(n % 2, room), participant(settings, f"u{n}", room)
            )
            sigs.append(sig)
            await sig.request("join")
            placed[room] = await _room_node(http_a if n % 2 else http_b, room)
        per_node = {n.node_id: sorted(r for r, p in placed.items() if p == n.node_id)
                    for n in cluster.nodes}  # fmt: skip
        log.info("measured: placement of 4 rooms %s", per_node)
        assert all(len(rooms) == 2 for rooms in per_node.values()), per_node
        listing = (await http_b.get("/api/sfu/nodes")).json()
        assert {n["node_id"]: n["rooms"] for n in listing["nodes"]} == {"node-a": 2, "node-b": 2}

        # A call across both control planes: publisher on A, subscriber on B.
        room = f"move-{uuid.uuid4().hex[:6]}"
        sig_pub = await SignalingClient.connect(
            cluster.ws(0, room), participant(settings, "pub", room)
        )
        sig_sub = await SignalingClient.connect(
            cluster.ws(1, room), participant(settings, "sub", room)
        )
        sigs += [sig_pub, sig_sub]
        joined = await sig_pub.request("join")
        pub = MediasoupPeer(sig_pub, joined["routerRtpCapabilities"])
        peers.append(pub)
        producer_id = await pub.publish(ToneTrack(440.0))
        joined = await sig_sub.request("join")
        sub = MediasoupPeer(sig_sub, joined["routerRtpCapabilities"])
        peers.append(sub)
        _, track = await sub.subscribe(producer_id)
        before = await _tone(track)
        assert abs(before - 440.0) < 5, before
        # A recording of the publisher, owned by control plane A.
        r = await http_a.post(
            f"/api/rooms/{room}/recordings", json={"identity": "pub", "video": False}
        )
        assert r.status_code == 202, r.text
        rec_id = r.json()["id"]
        await _wait_rec(http_a, room, rec_id, ("running",))
        await asyncio.sleep(2.0)
        first = await _room_node(http_a, room)
        victim = next(n for n in cluster.nodes if n.node_id == first)
        survivor = next(n for n in cluster.nodes if n.node_id != first)

        # The node dies without a word: its heartbeat stops.
        t0 = time.monotonic()
        victim.kill()
        ev_pub, ev_sub = await asyncio.gather(
            sig_pub.wait_event("rejoin", timeout=10), sig_sub.wait_event("rejoin", timeout=10)
        )
        t_told = time.monotonic() - t0
        assert ev_pub["node"] == ev_sub["node"] == survivor.node_id, (ev_pub, ev_sub)
        assert victim.node_id in ev_pub["reason"]
        await pub.close()
        await sub.close()

        # Both rejoin on the same sockets; the room is now on the survivor.
        joined_pub = await sig_pub.request("join")
        pub2 = MediasoupPeer(sig_pub, joined_pub["routerRtpCapabilities"])
        peers.append(pub2)
        joined_sub = await sig_sub.request("join")
        sub2 = MediasoupPeer(sig_sub, joined_sub["routerRtpCapabilities"])
        peers.append(sub2)
        t_moved = time.monotonic() - t0
        producer2 = await pub2.publish(ToneTrack(660.0))
        if not any(p["producerId"] == producer2 for p in joined_sub["producers"]):
            await sig_sub.wait_event("newProducer", lambda d: d["producerId"] == producer2, 10)
        _, track2 = await sub2.subscribe(producer2)
        await track2.recv()  # the first decoded frame on the new node
        t_media = time.monotonic() - t0
        after = await _tone(track2)
        assert await _room_node(http_b, room) == survivor.node_id
        log.info(
            "measured: node %s killed; rejoin told %.2f s, peers rejoined on %s %.2f s, "
            "media again %.2f s after the kill; tone %.1f Hz before, %.1f Hz after",
            victim.node_id, t_told, survivor.node_id, t_moved, t_media, before, after,
        )  # fmt: skip
        assert abs(after - 660.0) < 5, after
        assert t_moved < 5.0, f"peers moved after {t_moved:.2f} s"
        assert t_media < 5.0, f"media flowed again after {t_media:.2f} s"

        # The recording was finished (not cut) when its node went down; it decodes.
        rec = await _wait_rec(http_a, room, rec_id, ("completed", "failed"))
        assert rec["state"] == "completed", rec
        assert f"SFU node {victim.node_id} is down" in rec["history"][-1]["reason"], rec
        got = await http_a.get(f"/api/rooms/{room}/recordings/{rec_id}/file")
        assert got.status_code == 200
        out = cluster.media.data_dir.parent / "pub.ogg"
        out.write_bytes(got.content)
        pcm = decode_audio(out)
        rec_freq = dominant_frequency(pcm[12000:-12000], 48000)
        log.info(
            "measured: recording finished by the node-down: %.2f s decoded, %.1f Hz, "
            "stopped %.2f s after it started",
            len(pcm) / 48000, rec_freq, rec["stopped_at"] - rec["started_at"],
        )  # fmt: skip
        assert abs(rec_freq - 440.0) < 5 and len(pcm) / 48000 > 1.5

        # The dead node is marked down, for every instance.
        for http in (http_a, http_b):
            listing = (await http.get("/api/sfu/nodes")).json()
            assert [n["node_id"] for n in listing["nodes"]] == [survivor.node_id]
            assert victim.node_id in listing["down"]
        # `mediaplane status` against an instance lists the nodes, the dead one as down.
        shown = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "mediaplane.cli", "status", "--url", cluster.http(0)],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "MEDIAPLANE_ENV": "test", "COLUMNS": "200"},
        )  # fmt: skip
        assert "SFU node(s)" in shown.stdout, shown.stdout + shown.stderr
        node_rows = {ln.split()[1]: ln for ln in shown.stdout.splitlines() if "node-" in ln}
        assert "ok" in node_rows[survivor.node_id] and "down" in node_rows[victim.node_id], (
            shown.stdout
        )
        # A new room goes to the only node left.
        late = f"late-{uuid.uuid4().hex[:4]}"
        sig = await SignalingClient.connect(cluster.ws(0, late), participant(settings, "z", late))
        sigs.append(sig)
        await sig.request("join")
        assert await _room_node(http_a, late) == survivor.node_id

        # The instances log JSON lines with the ids as fields (MEDIAPLANE_LOG_FORMAT=json).
        lines = [
            json.loads(ln)
            for ln in (cluster.logs / "control-0.log").read_text().splitlines()
            if ln.startswith("{")
        ]
        joined = [x for x in lines if x.get("room") == late and x["msg"].startswith("peer joined")]
        assert joined and joined[0]["service"] == "control" and joined[0]["peer"], lines[-5:]
        node_lines = (cluster.logs / f"node-{survivor.ns_index}.log").read_text().splitlines()
        assert any(
            json.loads(ln).get("service") == "sfu-node" for ln in node_lines if ln[:1] == "{"
        )
    finally:
        for p in peers:
            await p.close()
        for s in sigs:
            with contextlib.suppress(Exception):
                await s.close()
        await http_a.aclose()
        await http_b.aclose()
