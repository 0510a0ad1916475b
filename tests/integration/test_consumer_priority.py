"""Consumer priorities on the real SFU (issue 20, setPriority): a subscriber's video
consumers share its link's bandwidth estimate by priority (mediasoup
consumer.setPriority): a shared screen first, then the best ranked speaker's camera, the
other cameras at mediasoup's default (control/rooms/lastn.py). Read back from the SFU.
Python peers: they send no audio level, so the rank here is by join order and changes
when a camera closes (the speaker path is unit-tested, tests/unit/control/rooms)."""

from __future__ import annotations

import uuid

import pytest

from mediaplane.peer import MediasoupPeer
from mediaplane.peer.tracks import ColorVideoTrack, PatternVideoTrack
from mediaplane.settings import Settings
from mediaplane.sfu import SfuClient
from tests.integration.test_control_signaling import join
from tests.support.control import ControlInstance

pytestmark = pytest.mark.integration


async def _priorities(client: SfuClient, consumers: dict[str, str]) -> dict[str, int]:
    return {name: await client.consumer_priority(cid) for name, cid in consumers.items()}


async def test_a_screen_then_the_speakers_camera_get_the_bandwidth_first(
    settings: Settings, control: ControlInstance, client: SfuClient
) -> None:
    room = f"prio-{uuid.uuid4().hex[:6]}"
    sig_a, alice, _ = await join(settings, control, room, "alice")
    sig_b, bob, _ = await join(settings, control, room, "bob")
    sig_c, carol, _ = await join(settings, control, room, "carol")
    peers: list[MediasoupPeer] = [alice, bob, carol]
    try:
        alice_cam = await alice.publish(PatternVideoTrack())
        alice_screen = await alice.publish(ColorVideoTrack(0x3366CC), source="screen")
        bob_cam = await bob.publish(PatternVideoTrack())
        consumers = {}
        for name, producer_id in (("alice", alice_cam), ("screen", alice_screen),
                                  ("bob", bob_cam)):  # fmt: skip
            consumers[name], _ = await carol.subscribe(producer_id)
        # Nobody spoke: Alice joined first, her camera ranks first.
        assert await _priorities(client, consumers) == {"alice": 2, "screen": 3, "bob": 1}

        # Alice's camera goes: Bob's is the best ranked one left.
        await sig_a.request("closeProducer", {"producerId": alice_cam})
        await sig_c.wait_event("consumerClosed", lambda d: d["producerId"] == alice_cam, 5)
        del consumers["alice"]
        # The SFU's consumer.closed reached the control plane before it sent consumerClosed,
        # and the re-ranking ran on it: nothing to wait for.
        assert await _priorities(client, consumers) == {"screen": 3, "bob": 2}
    finally:
        for peer in peers:
            await peer.close()
        for sig in (sig_a, sig_b, sig_c):
            await sig.close()
