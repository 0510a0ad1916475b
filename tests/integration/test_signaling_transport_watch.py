"""The server ends a signaling participant whose media connection is gone while its
socket stays open (control/signaling/transport_watch.py): aiortc peers, real SFU."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from mediaplane.control.signaling.transport_watch import CLOSE_MEDIA_LOST
from mediaplane.peer import ToneTrack
from mediaplane.settings import Settings
from tests.integration.test_control_signaling import join
from tests.support.control import ControlInstance

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


async def test_dtls_closed_ends_the_participant(
    settings: Settings, control: ControlInstance
) -> None:
    room = f"tw-{uuid.uuid4().hex[:8]}"
    sig_a, alice, _ = await join(settings, control, room, "alice")
    sig_b, bob, _ = await join(settings, control, room, "bob")
    try:
        producer_id = await alice.publish(ToneTrack(freq=440.0))
        await sig_b.wait_event("newProducer", lambda d: d["producerId"] == producer_id)
        for _ in range(200):  # DTLS up first (10 s at most): a close_notify needs a session
            if alice.connection_states()["send"] == "connected":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"alice not connected: {alice.connection_states()}")
        t0 = time.monotonic()
        await alice.close()  # DTLS close_notify to the SFU; the socket stays open
        closed = await sig_b.wait_event(
            "producerClosed", lambda d: d["producerId"] == producer_id, 10
        )
        left = await sig_b.wait_event("peerLeft", lambda d: d["peerId"] == closed["peerId"], 5)
        code = await sig_a.wait_closed(5)
        elapsed = time.monotonic() - t0
        log.info(
            "measured: peerLeft (%s) and close %s %.2f s after alice's DTLS closed",
            left["reason"], code, elapsed,
        )  # fmt: skip
        assert code == CLOSE_MEDIA_LOST
        assert sig_a.close_reason.startswith("media connection lost")
        assert left["reason"].startswith("media connection lost (DTLS")
    finally:
        await alice.close()
        await bob.close()
        await sig_b.close()
        await sig_a.close()
