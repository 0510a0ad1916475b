"""A real WebRTC peer (aiortc) through mediasoup: ICE, DTLS, SRTP, decoded content."""

from __future__ import annotations

import logging

import pytest

from mediaplane.peer import MediasoupPeer, SfuSignaling, ToneTrack
from mediaplane.sfu import SfuClient
from tests.support.mediacheck import collect_track_audio, dominant_frequency, rms

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


async def test_aiortc_publisher_to_aiortc_subscriber(client: SfuClient) -> None:
    router = await client.create_router("webrtc-audio")
    sig = SfuSignaling(client, router.router_id)
    alice = MediasoupPeer(sig, router.rtp_capabilities)
    bob = MediasoupPeer(sig, router.rtp_capabilities)
    try:
        producer_id = await alice.publish(ToneTrack(freq=440.0))
        _, track = await bob.subscribe(producer_id)
        pcm = await collect_track_audio(track, 3.0)
        # Skip the first second (jitter buffer fill, Opus warm-up); the rest is the tone.
        tail = pcm[48000:]
        assert rms(tail) > 0.05
        freq = dominant_frequency(tail, 48000)
        log.info("measured: webrtc tone %.2f Hz, rms %.3f", freq, rms(tail))
        assert abs(freq - 440.0) <= 5.0
        assert alice.connection_states()["send"] == "connected"
        assert bob.connection_states()["recv"] == "connected"
        assert alice.send_transport_id is not None
        stats = await client.get_stats("transport", alice.send_transport_id)
        assert stats[0]["dtlsState"] == "connected"
        assert stats[0]["iceState"] in ("connected", "completed")
        assert stats[0]["rtpBytesReceived"] > 0
    finally:
        await alice.close()
        await bob.close()
        await client.close_router(router.router_id)
