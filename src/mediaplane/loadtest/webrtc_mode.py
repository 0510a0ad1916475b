"""WebRTC load through the control plane: aiortc participants on the signaling
WebSocket, each publisher sending a tone, each subscriber receiving every publisher
of its room. Join latency is WebSocket connect to the first decoded frame of every
track; loss and jitter come from aiortc's inbound-rtp stats (RTCP receiver view)
over the measured window."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mediaplane.control.auth import Grants, mint_token
from mediaplane.loadtest.cpu import CpuMeter
from mediaplane.loadtest.models import LoadReport, LoadSpec
from mediaplane.loadtest.summary import summarize
from mediaplane.operator.rest import RestClient
from mediaplane.peer import MediasoupPeer, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.reachability import client_verify
from mediaplane.settings import Settings

Progress = Callable[[str], None]
CLOCK = 48000


@dataclass
class Member:
    sig: SignalingClient
    peer: MediasoupPeer
    producer_id: str | None = None
    drains: list[asyncio.Task[None]] = field(default_factory=list)


async def _drain(track: Any) -> None:
    """Consume decoded frames, as a player would (aiortc queues them otherwise)."""
    with contextlib.suppress(Exception):
        while True:
            await track.recv()


class WebRtcLoad:
    def __init__(self, spec: LoadSpec, settings: Settings, base_url: str, progress: Progress):
        self.spec, self.settings, self.progress = spec, settings, progress
        self.ws_base = base_url.replace("http://", "ws://").replace("https://", "wss://")
        # wss: the system's own certificate is trusted too (docs/networking.md)
        verify = client_verify(settings, check_hostname=True)
        self.ssl = verify if isinstance(verify, ssl.SSLContext) else None
        self.members: list[Member] = []
        self.join_s: list[float] = []
        self.publish_s: list[float] = []
        self.errors: list[str] = []
        self._gate = asyncio.Semaphore(spec.join_concurrency)

    def _token(self, room: str, identity: str, publish: bool) -> str:
        grants = Grants(room=room, room_join=True, can_publish=publish, can_subscribe=True)
        return mint_token(
            api_key=self.settings.api_key,
            api_secret=self.settings.secret("api_secret"),
            identity=identity,
            grants=grants,
            ttl_s=3600,
        )

    async def _join(
        self, room: str, identity: str, publish: bool, subscribe_to: list[str]
    ) -> Member:
        async with self._gate:
            t0 = time.monotonic()
            sig = await SignalingClient.connect(
                f"{self.ws_base}/ws/rooms/{room}",
                self._token(room, identity, publish),
                ssl=self.ssl if self.ws_base.startswith("wss://") else None,
            )
            member: Member | None = None
            try:
                joined = await sig.request("join", {"displayName": identity})
                peer = MediasoupPeer(sig, joined["routerRtpCapabilities"], joined.get("iceServers"))
                member = Member(sig, peer)
                self.members.append(member)
                if publish:
                    member.producer_id = await member.peer.publish(ToneTrack(freq=440.0))
                    self.publish_s.append(time.monotonic() - t0)
                tracks = [(await member.peer.subscribe(p))[1] for p in subscribe_to]
                for track in tracks:
                    async with asyncio.timeout(15):
                        await track.recv()
                if tracks:
                    self.join_s.append(time.monotonic() - t0)
                member.drains = [asyncio.create_task(_drain(t)) for t in tracks]
                return member
            except BaseException:
                if member is None:
                    await sig.close()
                raise

    async def _room(self, index: int) -> None:
        spec = self.spec
        room = f"{spec.room_prefix}-{index}"
        pubs = await asyncio.gather(
            *(self._join(room, f"pub{i}", True, []) for i in range(spec.publishers))
        )
        producers = [m.producer_id for m in pubs if m.producer_id]
        jobs = [self._join(room, f"sub{i}", False, producers) for i in range(spec.subscribers)]
        if spec.publishers_subscribe:
            for m in pubs:
                others = [p for p in producers if p != m.producer_id]
                jobs.append(self._subscribe_more(m, others))
        for r in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(r, BaseException):
                self.errors.append(f"room {room}: {type(r).__name__}: {r}")

    async def _subscribe_more(self, member: Member, producers: list[str]) -> Member:
        t0 = time.monotonic()
        tracks = [(await member.peer.subscribe(p))[1] for p in producers]
        for track in tracks:
            async with asyncio.timeout(15):
                await track.recv()
        if tracks:
            self.join_s.append(time.monotonic() - t0)
        member.drains += [asyncio.create_task(_drain(t)) for t in tracks]
        return member

    async def _snapshot(self) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for m in self.members:
            for s in await m.peer.inbound_rtp_stats():
                out[int(s["ssrc"])] = s
        return out

    async def run(self, worker_pids: list[int]) -> LoadReport:
        spec = self.spec
        meter = CpuMeter(worker_pids)
        try:
            self.progress(f"joining {spec.rooms} room(s) with aiortc ...")
            results = await asyncio.gather(
                *(self._room(i) for i in range(spec.rooms)), return_exceptions=True
            )
            for i, r in enumerate(results):
                if isinstance(r, BaseException):
                    self.errors.append(f"room {i}: {type(r).__name__}: {r}")
            before = await self._snapshot()
            meter.start()
            t0 = time.monotonic()
            self.progress(f"measuring {len(before)} streams for {spec.duration_s} s")
            await asyncio.sleep(spec.duration_s)
            after = await self._snapshot()
            wall = time.monotonic() - t0
            cpu = meter.stop(wall)
        finally:
            for m in self.members:
                for task in m.drains:
                    task.cancel()
                with contextlib.suppress(Exception):
                    await m.peer.close()
                with contextlib.suppress(Exception):
                    await m.sig.close()
        # aiortc's own view over the window: packets received, and lost by its
        # sequence numbers (it has no send times: lateness is not measured here)
        expected, received, jitter = [], [], []
        for ssrc, end in after.items():
            start = before.get(ssrc, {"packetsReceived": 0, "packetsLost": 0})
            got = end["packetsReceived"] - start["packetsReceived"]
            lost = max(0, end["packetsLost"] - start["packetsLost"])
            expected.append(got + lost)
            received.append(got)
            jitter.append(end["jitter"] / CLOCK)
        return summarize(
            spec,
            expected=expected,
            received=received,
            late=[0] * len(received),
            jitter_s=jitter,
            join_s=self.join_s,
            publish_s=self.publish_s,
            errors=self.errors,
            cpu=cpu,
            wall_s=wall,
        )


async def run_webrtc(
    spec: LoadSpec, settings: Settings, base_url: str, progress: Progress = lambda _m: None
) -> LoadReport:
    def workers() -> list[int]:
        with RestClient.from_settings(settings, base_url) as client:
            info = client.system()
        return [int(w["pid"]) for w in (info.get("sfu") or {}).get("workers", [])]

    pids = await asyncio.to_thread(workers)
    return await WebRtcLoad(spec, settings, base_url, progress).run(pids)
