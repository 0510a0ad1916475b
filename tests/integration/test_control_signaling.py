"""Sequence 1 of the seed end to end: real control plane(s), real SFU, real Redis,
aiortc peers speaking our WebSocket signaling; media checked by decoded content."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pytest

from mediaplane.peer import MediasoupPeer, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from tests.support.control import ControlInstance, participant
from tests.support.mediacheck import (
    audio_received_within,
    collect_track_audio,
    dominant_frequency,
    rms,
)

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


async def join(
    settings: Settings, inst: ControlInstance, room: str, identity: str, **grants: Any
) -> tuple[SignalingClient, MediasoupPeer, dict[str, Any]]:
    sig = await SignalingClient.connect(
        inst.ws(room), participant(settings, identity, room, **grants)
    )
    joined = await sig.request("join", {"displayName": identity.title()})
    return sig, MediasoupPeer(sig, joined["routerRtpCapabilities"]), joined


async def _publish_receive_leave(
    settings: Settings, inst_a: ControlInstance, inst_b: ControlInstance
) -> None:
    room = f"room-{uuid.uuid4().hex[:8]}"
    sig_a, alice, _ = await join(settings, inst_a, room, "alice")
    sig_b, bob, joined_b = await join(settings, inst_b, room, "bob")
    try:
        assert [p["identity"] for p in joined_b["peers"]] == ["alice"]
        seen = await sig_a.wait_event("peerJoined", lambda d: d["peer"]["identity"] == "bob")
        assert seen["peer"]["displayName"] == "Bob"

        producer_id = await alice.publish(ToneTrack(freq=440.0))
        event = await sig_b.wait_event("newProducer", lambda d: d["producerId"] == producer_id)
        assert (event["kind"], event["source"], event["identity"]) == ("audio", "audio", "alice")

        consumer_id, track = await bob.subscribe(producer_id)
        pcm = (await collect_track_audio(track, 3.0))[48000:]
        assert rms(pcm) > 0.05
        freq = dominant_frequency(pcm, 48000)
        assert abs(freq - 440.0) <= 5.0, freq

        t0 = time.monotonic()
        await sig_a.close()  # the socket drops: no goodbye
        closed = await sig_b.wait_event(
            "producerClosed", lambda d: d["producerId"] == producer_id, 5
        )
        left = await sig_b.wait_event("peerLeft", lambda d: d["peerId"] == closed["peerId"], 5)
        gone = await sig_b.wait_event("consumerClosed", lambda d: d["consumerId"] == consumer_id, 5)
        elapsed = time.monotonic() - t0
        assert left["reason"] == "disconnected" and gone["producerId"] == producer_id
        log.info(
            "measured: tone %.2f Hz; producerClosed+peerLeft+consumerClosed %.3f s after drop",
            freq,
            elapsed,
        )
        assert elapsed < 1.0, f"peer-left after {elapsed:.2f} s"
    finally:
        await alice.close()
        await bob.close()
        await sig_b.close()
        await sig_a.close()


async def test_two_peers_one_instance(settings: Settings, control: ControlInstance) -> None:
    await _publish_receive_leave(settings, control, control)


async def test_two_peers_two_instances_sharing_redis(
    settings: Settings, control: ControlInstance, control2: ControlInstance
) -> None:
    await _publish_receive_leave(settings, control, control2)


async def test_mute_is_seen_by_others(settings: Settings, control: ControlInstance) -> None:
    room = f"room-{uuid.uuid4().hex[:8]}"
    sig_a, alice, _ = await join(settings, control, room, "alice")
    sig_b, bob, _ = await join(settings, control, room, "bob")
    try:
        producer_id = await alice.publish(ToneTrack())
        await sig_b.wait_event("newProducer")
        consumer_id, track = await bob.subscribe(producer_id)
        heard = await collect_track_audio(track, 1.0)
        assert abs(dominant_frequency(heard, 48000) - 440.0) <= 5.0  # the tone, before
        await sig_a.request("pauseProducer", {"producerId": producer_id})
        ev = await sig_b.wait_event("producerPaused", lambda d: d["producerId"] == producer_id)
        assert ev["peerId"]
        await sig_b.wait_event("consumerPaused", lambda d: d["consumerId"] == consumer_id)
        await audio_received_within(track, 0.5)  # what was in flight when the pause came
        muted = await audio_received_within(track, 1.5)
        log.info("measured: %.3f s of audio reached bob in 1.5 s muted", len(muted) / 48000)
        assert rms(muted) < 0.01, (len(muted), rms(muted))  # silence (or nothing) while muted
        await sig_a.request("resumeProducer", {"producerId": producer_id})
        await sig_b.wait_event("producerResumed", lambda d: d["producerId"] == producer_id)
        back = await collect_track_audio(track, 1.5)
        assert abs(dominant_frequency(back[-48000:], 48000) - 440.0) <= 5.0  # the tone, after
        assert rms(back[-48000:]) > 0.05, rms(back[-48000:])
        await sig_a.request("leave")
        await sig_b.wait_event("peerLeft", lambda d: d["reason"] == "left")
    finally:
        await alice.close()
        await bob.close()
        await sig_a.close()
        await sig_b.close()


async def test_rejoin_with_same_identity_replaces_the_old_session(
    settings: Settings, control: ControlInstance
) -> None:
    room = f"room-{uuid.uuid4().hex[:8]}"
    first, _, _ = await join(settings, control, room, "carol")
    second, _, joined = await join(settings, control, room, "carol")
    try:
        assert await first.wait_closed() == 4009
        assert joined["peers"] == []
    finally:
        await first.close()
        await second.close()
    await asyncio.sleep(0)


async def test_a_join_while_the_last_peer_leaves_keeps_the_room(
    settings: Settings, control: ControlInstance
) -> None:
    # The last peer's leave tears its media down (awaits) and then dropped the room
    # here when it saw nobody: a join that had the room in hand meanwhile was added to
    # a dropped room, and its next request answered "join the room first" (seen in CI).
    for attempt in range(10):
        room = f"race-{uuid.uuid4().hex[:8]}"
        first, _, _ = await join(settings, control, room, "leaver")
        await first.request("createTransport", {"direction": "recv"})  # its leave awaits the SFU
        second = await SignalingClient.connect(
            control.ws(room), participant(settings, "joiner", room)
        )
        try:
            await asyncio.gather(first.close(), second.request("join"))
            await second.request("createTransport", {"direction": "recv"})
        except Exception as e:
            raise AssertionError(f"attempt {attempt}: {e}") from e
        finally:
            await second.close()
