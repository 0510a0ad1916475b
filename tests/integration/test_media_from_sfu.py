"""RTP from a real mediasoup plain transport into a media-manager recorder.

GStreamer -> SFU producer; SFU consumer on a plain transport connected to the
recorder's ports (RTP and RTCP, so rtpbin gets sender reports) -> .webm, decoded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mediaplane.sfu import SfuClient
from tests.support.gst import GstProcess, av_sender
from tests.support.media import MediaService, wait_job
from tests.support.mediacheck import (
    check_ball_video,
    decode_audio,
    dominant_frequency,
    probe_streams,
)

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


def _stream(consumer_rtp: dict[str, object]) -> dict[str, object]:
    codec = consumer_rtp["codecs"][0]  # type: ignore[index]
    enc = consumer_rtp["encodings"][0]  # type: ignore[index]
    out = {
        "mimeType": codec["mimeType"],
        "payloadType": codec["payloadType"],
        "clockRate": codec["clockRate"],
        "ssrc": enc["ssrc"],
    }
    if "channels" in codec:
        out["channels"] = codec["channels"]
    return out


async def test_sfu_plain_consumers_into_an_av_recording(
    client: SfuClient, media: MediaService
) -> None:
    router = await client.create_router("sfu-to-recorder")
    try:
        caps = router.rtp_capabilities
        producers = {}
        in_ports = {}
        # av_sender's payload types and SSRCs.
        senders = (
            ("audio", 100, 11111111, "audio/opus", 48000),
            ("video", 101, 22222222, "video/VP8", 90000),
        )
        for kind, pt, ssrc, mime, rate in senders:
            t = await client.create_plain_transport(router.router_id, comedia=True)
            codec = {"mimeType": mime, "payloadType": pt, "clockRate": rate}
            if kind == "audio":
                codec["channels"] = 2
            p = await client.produce(
                t.transport_id, kind, {"codecs": [codec], "encodings": [{"ssrc": ssrc}]}
            )
            producers[kind], in_ports[kind] = p.producer_id, t.tuple.local_port
        # One plain transport per stream towards the recorder, RTCP on its own port.
        consumers, transports = {}, {}
        for kind in ("audio", "video"):
            t = await client.create_plain_transport(router.router_id, rtcp_mux=False)
            c = await client.consume(t.transport_id, producers[kind], caps, paused=True)
            consumers[kind], transports[kind] = c, t.transport_id
        async with media.client() as http:
            body = {"filePath": "from-sfu", "audio": _stream(consumers["audio"].rtp_parameters),
                    "video": _stream(consumers["video"].rtp_parameters)}  # fmt: skip
            job = (await http.post("/recordings", json=body)).json()
            for kind in ("audio", "video"):
                ep = job["rtp"][kind]
                await client.connect_plain_transport(
                    transports[kind], ip=ep["ip"], port=ep["port"], rtcp_port=ep["rtcpPort"]
                )
                await client.resume_consumer(consumers[kind].consumer_id)
            await client.request_key_frame(consumers["video"].consumer_id)
            tx = await GstProcess.start(
                *av_sender(in_ports["audio"], in_ports["video"], seconds=5.0, freq=330.0)
            )
            await tx.wait(30)
            await wait_job(http, job["id"], lambda j: j["stats"]["packets_received"] >= 400)
            done = (await http.post(f"/recordings/{job['id']}/stop")).json()
        assert done["state"] == "completed", done
        out = Path(done["output_path"])
        streams = {s.codec_type: s for s in probe_streams(out, count_frames=True)}
        assert streams["video"].frames is not None and abs(streams["video"].frames - 150) <= 4
        ball = check_ball_video(out)  # the frames are the sent ball, moving: not only a count
        assert ball.ball_share >= 0.95 and ball.moving_share >= 0.9, ball
        pcm = decode_audio(out)
        assert abs(len(pcm) / 48000 - 5.0) <= 0.3
        assert abs(dominant_frequency(pcm[4800:-4800], 48000) - 330.0) <= 2.0
        a, v = streams["audio"].start_time, streams["video"].start_time
        log.info(
            "measured: sfu->recorder %.3f s audio, %s frames, A/V offset %.3f s",
            len(pcm) / 48000,
            streams["video"].frames,
            abs((a or 0) - (v or 0)),
        )
        assert a is not None and v is not None and abs(a - v) < 0.1
    finally:
        await client.close_router(router.router_id)
