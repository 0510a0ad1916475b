"""SFU plumbing for media jobs: a room's track fed to a media manager's worker.

    plain transport on the room's router -> consume (paused)
      -> the media job answers where to send (ip, RTP port, RTCP port)
      -> connect -> resume -> key frames

A worker sends no RTCP to the SFU, so the key frames its depayloaders ask for after
a loss are counted in the job (`keyframe_requests`) and relayed by `KeyFrameRelay`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from mediaplane.media.models import Endpoint, Job
from mediaplane.sfu import SfuClient, SfuError
from mediaplane.wire.ids import Json


def consumer_stream(consumer_rtp: Json) -> Json:
    """An SFU consumer's rtpParameters as the media manager's stream description."""
    codec, enc = consumer_rtp["codecs"][0], consumer_rtp["encodings"][0]
    out = {"mimeType": codec["mimeType"], "payloadType": codec["payloadType"],
           "clockRate": codec["clockRate"], "ssrc": enc["ssrc"]}  # fmt: skip
    if codec.get("channels"):
        out["channels"] = codec["channels"]
    return out


@dataclass
class Feed:
    """One producer consumed on a plain transport of its own, for a media job."""

    sfu: SfuClient
    transport_id: str
    consumer_id: str
    stream: Json  # what the media manager is told of the RTP (consumer_stream)

    async def connect(self, ep: Endpoint, *, resume: bool = True) -> None:
        """Send to the worker's ports (RTP and, unmuxed, RTCP); then let media flow."""
        await self.sfu.connect_plain_transport(
            self.transport_id, ip=ep.ip, port=ep.port, rtcp_port=ep.rtcp_port
        )
        if resume:
            await self.resume()

    async def resume(self) -> None:
        await self.sfu.resume_consumer(self.consumer_id)

    async def close(self) -> None:
        await close_transport(self.sfu, self.transport_id)


async def open_feed(
    sfu: SfuClient, router_id: str, producer_id: str, app_data: Json, caps: Json | None = None
) -> Feed:
    """A plain transport (RTP and RTCP apart) on `router_id` consuming `producer_id`
    (a producer of that router: the room's `usable_producer`), paused. On a failure
    the transport is closed again."""
    t = await sfu.create_plain_transport(router_id, rtcp_mux=False, app_data=app_data)
    try:
        caps = caps or await sfu.get_router_rtp_capabilities(router_id)
        c = await sfu.consume(t.transport_id, producer_id, caps, paused=True)
    except BaseException:
        await close_transport(sfu, t.transport_id)
        raise
    return Feed(sfu, t.transport_id, c.consumer_id, consumer_stream(c.rtp_parameters))


async def close_transport(sfu: SfuClient, transport_id: str) -> None:
    """Close a plain transport (and so its consumers); gone already is fine."""
    with contextlib.suppress(SfuError):
        await sfu.close_transport(transport_id)


async def request_key_frames(sfu: SfuClient, consumer_id: str, times: int, every_s: float) -> None:
    """A decoder needs a key frame; the first requests may race the connect."""
    for _ in range(times):
        with contextlib.suppress(SfuError):
            await sfu.request_key_frame(consumer_id)
        await asyncio.sleep(every_s)


class KeyFrameRelay:
    """Key frames for a media job's video inputs after a loss: the job counts its
    depayloaders' requests (`keyframe_requests`); each time a count moves, whoever
    connected the inputs asks the SFU."""

    def __init__(self) -> None:
        self.relayed: dict[str, int] = {}  # input -> requests seen

    def due(self, job: Job) -> list[tuple[str, int]]:
        """Inputs whose count moved since the last look, with their counts (pure)."""
        moved = []
        for name, count in job.keyframe_requests.items():
            if count > self.relayed.get(name, 0):
                self.relayed[name] = count
                moved.append((name, count))
        return moved

    async def relay(
        self, sfu: SfuClient, job: Job, consumers: Mapping[str, str | None]
    ) -> list[tuple[str, int]]:
        """Ask for a key frame of each input (its consumer in `consumers`) with new
        requests; returns those inputs and their counts."""
        asked = []
        for name, count in self.due(job):
            consumer = consumers.get(name)
            if consumer is not None:
                with contextlib.suppress(SfuError):
                    await sfu.request_key_frame(consumer)
                asked.append((name, count))
        return asked
