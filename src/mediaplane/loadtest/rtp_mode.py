"""Plain RTP load on a running SFU, through its RPC (one router per room).

A publisher is a plain transport (comedia) with an Opus producer that our sender
thread feeds at 50 pps; a subscriber is a plain transport connected to our
receiver socket with one consumer per publisher of its room. Join latency is from
the first RPC of a subscriber to the first packet of every stream it consumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable

from mediaplane.loadtest.cpu import CpuMeter
from mediaplane.loadtest.models import LoadReport, LoadSpec
from mediaplane.loadtest.rtpflow import PTIME_S, Publisher, Receiver, Sender, opus_parameters
from mediaplane.loadtest.summary import summarize
from mediaplane.sfu import SfuClient
from mediaplane.sfu.models import RouterInfo

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
_ssrcs = itertools.count(0x10000000)


async def until(done: Callable[[], bool], interval_s: float) -> None:
    """Poll state that our sender/receiver threads change (no event loop there)."""
    while True:
        if done():
            return
        await asyncio.sleep(interval_s)


class RtpLoad:
    def __init__(self, spec: LoadSpec, client: SfuClient, progress: Progress) -> None:
        self.spec = spec
        self.client = client
        self.progress = progress
        self.receiver = Receiver(spec.late_after_ms / 1000)
        self.sender = Sender()
        self.routers: list[RouterInfo] = []
        self.join_s: list[float] = []
        self.publish_s: list[float] = []
        self.errors: list[str] = []
        self.consumer_ssrcs: list[int] = []
        self._gate = asyncio.Semaphore(spec.join_concurrency)

    async def _publish(self, router: RouterInfo) -> str:
        async with self._gate:
            t0 = time.monotonic()
            ssrc = next(_ssrcs)
            t = await self.client.create_plain_transport(router.router_id, comedia=True)
            p = await self.client.produce(t.transport_id, "audio", opus_parameters(ssrc))
            self.sender.add(Publisher(ssrc, t.tuple.local_port, self._host(t.tuple.local_address)))
            self.publish_s.append(time.monotonic() - t0)
            return p.producer_id

    @staticmethod
    def _host(address: str) -> str:
        return "127.0.0.1" if address in ("0.0.0.0", "") else address

    async def _subscribe(self, router: RouterInfo, producer_ids: list[str]) -> None:
        if not producer_ids:
            return
        async with self._gate:
            t0 = time.monotonic()
            t = await self.client.create_plain_transport(router.router_id)
            await self.client.connect_plain_transport(
                t.transport_id, ip=self.receiver.host, port=self.receiver.port
            )
            ssrcs = []
            for producer_id in producer_ids:
                c = await self.client.consume(
                    t.transport_id, producer_id, router.rtp_capabilities, paused=False
                )
                ssrcs.append(int(c.rtp_parameters["encodings"][0]["ssrc"]))
        self.consumer_ssrcs += ssrcs
        async with asyncio.timeout(15):
            await until(lambda: all(s in self.receiver.streams for s in ssrcs), 0.01)
        last = max(self.receiver.streams[s].first_at for s in ssrcs)
        self.join_s.append(last - t0)

    async def _room(self, index: int) -> None:
        spec = self.spec
        router = await self.client.create_router(f"{spec.room_prefix}-{index}")
        self.routers.append(router)
        producers = await asyncio.gather(*(self._publish(router) for _ in range(spec.publishers)))
        jobs = [self._subscribe(router, list(producers)) for _ in range(spec.subscribers)]
        if spec.publishers_subscribe:
            jobs += [
                self._subscribe(router, [p for p in producers if p != own]) for own in producers
            ]
        for result in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(result, BaseException):
                self.errors.append(f"room {index}: {type(result).__name__}: {result}")

    async def run(self) -> LoadReport:
        spec = self.spec
        info = await self.client.server_info()
        meter = CpuMeter([w.pid for w in info.workers])
        self.sender.start()
        try:
            self.progress(f"joining {spec.rooms} room(s) over plain RTP ...")
            results = await asyncio.gather(
                *(self._room(i) for i in range(spec.rooms)), return_exceptions=True
            )
            for i, r in enumerate(results):
                if isinstance(r, BaseException):
                    self.errors.append(f"room {i}: {type(r).__name__}: {r}")
            ticks = round(spec.duration_s / PTIME_S)
            start_tick = self.sender.tick + 2
            self.receiver.window = (start_tick, start_tick + ticks)
            # CPU is counted over the same window as the packets: from the window's
            # first tick to its last, not over the idle tail waited for the last
            # packets' deadline (the sender keeps sending then, uncounted)
            await until(lambda: self.sender.tick >= start_tick, 0.002)
            meter.start()
            t0 = time.monotonic()
            self.progress(f"measuring {len(self.consumer_ssrcs)} streams for {spec.duration_s} s")
            await until(lambda: self.sender.tick >= start_tick + ticks, 0.002)
            wall = time.monotonic() - t0
            cpu = meter.stop(wall)
            await asyncio.sleep(spec.late_after_ms / 1000 + 0.3)  # the last packets' deadline
        finally:
            self.sender.close()
            for router in self.routers:
                with contextlib.suppress(Exception):
                    await self.client.close_router(router.router_id)
            self.receiver.close()
        if self.sender.max_lag_s > 0.1:
            log.warning("the sender fell %.0f ms behind its clock", self.sender.max_lag_s * 1000)
        streams = [self.receiver.streams.get(s) for s in self.consumer_ssrcs]
        return summarize(
            spec,
            expected=[ticks] * len(streams),
            received=[s.received if s else 0 for s in streams],
            late=[s.late if s else 0 for s in streams],
            jitter_s=[s.jitter_s for s in streams if s],
            join_s=self.join_s,
            publish_s=self.publish_s,
            errors=self.errors,
            cpu=cpu,
            wall_s=spec.duration_s,
            packet_bytes_out=self.receiver.packet_bytes or None,
        )


async def run_rtp(
    spec: LoadSpec, sfu_url: str, sfu_secret: str, progress: Progress = lambda _m: None
) -> LoadReport:
    client = await SfuClient.create(sfu_url, sfu_secret, request_timeout=60, reconnect=False)
    try:
        return await RtpLoad(spec, client, progress).run()
    finally:
        await client.close()
