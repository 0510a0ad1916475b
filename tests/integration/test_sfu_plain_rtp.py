"""GStreamer -> plain RTP producer -> SFU -> plain RTP consumer -> GStreamer file.

The files are decoded and measured: duration, tone frequency, frame count,
resolution. Synchronisation is on events (process exit, SFU packet counters),
never on sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

from mediaplane.sfu import SfuClient
from tests.support.gst import (
    GstProcess,
    free_udp_port,
    opus_ogg_receiver,
    opus_sender,
    vp8_sender,
    vp8_webm_receiver,
)
from tests.support.mediacheck import decode_audio, dominant_frequency, probe_streams

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

OPUS_PARAMS = {
    "codecs": [
        {
            "mimeType": "audio/opus",
            "payloadType": 100,
            "clockRate": 48000,
            "channels": 2,
            "parameters": {"sprop-stereo": 1},
        }
    ],
    "encodings": [{"ssrc": 11111111}],
}
VP8_PARAMS = {
    "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}],
    "encodings": [{"ssrc": 22222222}],
}


async def _stat_packets(client: SfuClient, method: str, key: str, obj_id: str) -> int:
    data = await client.request(method, {key: obj_id})
    return sum(int(s.get("packetCount", 0)) for s in data["stats"])


async def _wait_forwarded(client: SfuClient, producer_id: str, consumer_id: str) -> int:
    """Wait until the consumer has sent every packet the producer received."""
    async with asyncio.timeout(10):
        while True:
            received = await _stat_packets(client, "producer.getStats", "producerId", producer_id)
            sent = await _stat_packets(client, "consumer.getStats", "consumerId", consumer_id)
            if received > 0 and sent >= received:
                return sent
            await asyncio.sleep(0.1)


async def _relay(
    client: SfuClient,
    kind: str,
    rtp_parameters: dict[str, Any],
    sender: Any,
    receiver: Any,
    out: Path,
) -> tuple[int, dict[str, Any]]:
    """Wire sender -> SFU -> receiver and run the sender to its end."""
    router = await client.request("router.create", {"roomId": f"plain-{uuid.uuid4()}"})
    router_id = router["routerId"]
    try:
        # Producer side: comedia, the SFU learns the sender's address from its first packet.
        p_tr = await client.request(
            "transport.createPlain", {"routerId": router_id, "comedia": True, "rtcpMux": True}
        )
        producer = await client.request(
            "transport.produce",
            {"transportId": p_tr["transportId"], "kind": kind, "rtpParameters": rtp_parameters},
        )
        # Consumer side: the SFU sends to the receiver's port.
        c_tr = await client.request(
            "transport.createPlain", {"routerId": router_id, "comedia": False, "rtcpMux": True}
        )
        rx_port = free_udp_port()
        consumer = await client.request(
            "transport.consume",
            {
                "transportId": c_tr["transportId"],
                "producerId": producer["producerId"],
                "rtpCapabilities": router["rtpCapabilities"],
                "paused": True,
            },
        )
        pt = consumer["rtpParameters"]["codecs"][0]["payloadType"]
        rx = await GstProcess.start(*receiver(rx_port, pt=pt, out=out))
        await client.request(
            "transport.connectPlain",
            {"transportId": c_tr["transportId"], "ip": "127.0.0.1", "port": rx_port},
        )
        await client.request("consumer.resume", {"consumerId": consumer["consumerId"]})
        tx = await GstProcess.start(*sender(p_tr["tuple"]["localPort"]))
        await tx.wait(timeout=30)
        sent = await _wait_forwarded(client, producer["producerId"], consumer["consumerId"])
        await rx.stop()
        return sent, consumer
    finally:
        await client.request("router.close", {"routerId": router_id})


async def test_opus_through_plain_transports_to_ogg(client: SfuClient, tmp_path: Path) -> None:
    out = tmp_path / "tone.ogg"
    seconds, freq = 6.0, 440.0
    sent, consumer = await _relay(
        client,
        "audio",
        OPUS_PARAMS,
        lambda port: opus_sender(port, freq=freq, seconds=seconds, pt=100, ssrc=11111111),
        opus_ogg_receiver,
        out,
    )
    assert consumer["kind"] == "audio"
    assert sent >= seconds * 50 * 0.99  # 20 ms packets

    (audio,) = probe_streams(out)
    assert audio.codec_name == "opus"
    assert audio.duration is not None
    assert abs(audio.duration - seconds) <= 0.3, audio.duration
    pcm = decode_audio(out)
    measured = dominant_frequency(pcm[4800:-4800], 48000)
    log.info(
        "measured: opus ogg %.3f s (decoded %.3f s), %.2f Hz",
        audio.duration,
        len(pcm) / 48000,
        measured,
    )
    assert abs(len(pcm) / 48000 - seconds) <= 0.3
    assert abs(measured - freq) <= 2.0


async def test_vp8_through_plain_transports_to_webm(client: SfuClient, tmp_path: Path) -> None:
    out = tmp_path / "ball.webm"
    seconds, fps, width, height = 5.0, 30, 320, 240
    _, consumer = await _relay(
        client,
        "video",
        VP8_PARAMS,
        lambda port: vp8_sender(
            port, seconds=seconds, fps=fps, width=width, height=height, pt=101, ssrc=22222222
        ),
        vp8_webm_receiver,
        out,
    )
    assert consumer["kind"] == "video"
    (video,) = probe_streams(out, count_frames=True)
    assert video.codec_name == "vp8"
    assert (video.width, video.height) == (width, height)
    assert video.frames is not None
    expected = int(seconds * fps)
    log.info(
        "measured: vp8 webm %s frames of %d, %dx%d",
        video.frames,
        expected,
        video.width,
        video.height,
    )
    # Every frame the sender made arrives and decodes (loopback, no loss).
    assert expected - 2 <= video.frames <= expected, video.frames
