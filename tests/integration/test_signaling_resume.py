"""A signaling socket that drops is not a leave: the participant resumes its session
(same peer id, same tracks) within the grace period, on the same control-plane
instance, on another one, or after the one serving it was killed (SIGKILL); after the
grace period it is a leave and the resume is refused. aiortc peers, real SFU and Redis
(docs/signaling.md#resuming-a-session)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.peer import MediasoupPeer, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient, SignalingReplyError
from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer, free_tcp_port
from tests.integration.test_control_signaling import join
from tests.support.control import ControlInstance, admin, participant
from tests.support.mediacheck import rms

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

GAP_S = 0.5  # the longest silence a listener may hear while the socket is replaced


@dataclass
class Listener:
    """Reads a received audio track for ever: when each frame came, and how loud."""

    track: Any
    stamps: list[tuple[float, float]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> Listener:
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        while True:
            frame = await self.track.recv()
            pcm = frame.to_ndarray().astype("float32") / 32768.0
            self.stamps.append((time.monotonic(), rms(pcm)))

    def longest_gap(self, since: float, until: float) -> float:
        times = [since] + [t for t, _ in self.stamps if since <= t <= until] + [until]
        return max(b - a for a, b in itertools.pairwise(times))

    def loud_after(self, since: float) -> int:
        return sum(1 for t, level in self.stamps if t >= since and level > 0.05)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


async def _call(
    settings: Settings, inst_a: ControlInstance | str, inst_b: ControlInstance | str, room: str
) -> tuple[SignalingClient, MediasoupPeer, SignalingClient, MediasoupPeer, str, Listener]:
    """alice (on `inst_a`) publishes a tone, bob (on `inst_b`) listens."""
    sig_a, alice, joined = await _join(settings, inst_a, room, "alice")
    sig_b, bob, _ = await _join(settings, inst_b, room, "bob")
    producer_id = await alice.publish(ToneTrack(freq=440.0))
    await sig_b.wait_event("newProducer", lambda d: d["producerId"] == producer_id)
    _, track = await bob.subscribe(producer_id)
    listener = Listener(track).start()
    async with asyncio.timeout(10):
        while listener.loud_after(0) < 20:  # noqa: ASYNC110 (frames, not an event)
            await asyncio.sleep(0.05)
    return sig_a, alice, sig_b, bob, str(joined["peerId"]), listener


async def _join(
    settings: Settings, inst: ControlInstance | str, room: str, identity: str
) -> tuple[SignalingClient, MediasoupPeer, dict[str, Any]]:
    if isinstance(inst, ControlInstance):
        return await join(settings, inst, room, identity)
    sig = await SignalingClient.connect(
        f"{inst}/ws/rooms/{room}", participant(settings, identity, room)
    )
    joined = await sig.request("join", {"displayName": identity.title()})
    return sig, MediasoupPeer(sig, joined["routerRtpCapabilities"]), joined


def _left(sig: SignalingClient, peer_id: str) -> list[dict[str, Any]]:
    return [d for e, d in sig.events if e == "peerLeft" and d["peerId"] == peer_id]


async def test_a_dropped_socket_resumes_the_same_peer_and_media_never_stops(
    settings: Settings, control: ControlInstance
) -> None:
    room = f"res-{uuid.uuid4().hex[:8]}"
    sig_a, alice, sig_b, bob, alice_id, listener = await _call(settings, control, control, room)
    sig_a2: SignalingClient | None = None
    try:
        token = sig_a.resume_token
        assert token is not None and len(token) >= 40
        t0 = time.monotonic()
        sig_a.drop()
        await sig_b.wait_event("peerReconnecting", lambda d: d["peerId"] == alice_id, 5)
        sig_a2, reply = await SignalingClient.resume(
            control.ws(room), participant(settings, "alice", room), token
        )
        alice.signaling = sig_a2
        await sig_b.wait_event("peerReconnected", lambda d: d["peerId"] == alice_id, 5)
        resumed = time.monotonic()
        log.info("measured: resumed on the same instance %.2f s after the drop", resumed - t0)
        assert reply["peerId"] == alice_id
        assert [p["producerId"] for p in reply["ownProducers"]] == list(alice.producers)
        assert {t["transportId"] for t in reply["transports"]} == {alice.send_transport_id}
        assert reply["resumeToken"] != token
        assert [p["identity"] for p in reply["peers"]] == ["bob"]
        await asyncio.sleep(1.0)
        gap = listener.longest_gap(t0, time.monotonic())
        log.info("measured: longest audio gap at bob across alice's resume %.3f s", gap)
        assert gap < GAP_S
        assert listener.loud_after(resumed) > 20
        assert _left(sig_b, alice_id) == []
        # The resumed session is alice's: she mutes, leaves; bob is told.
        await sig_a2.request("pauseProducer", {"producerId": next(iter(alice.producers))})
        await sig_b.wait_event("producerPaused", timeout=5)
        await sig_a2.request("leave")
        await sig_b.wait_event("peerLeft", lambda d: d["peerId"] == alice_id, 5)
    finally:
        await listener.stop()
        await alice.close()
        await bob.close()
        for sig in (sig_a2, sig_b, sig_a):
            if sig is not None:
                await sig.close()


async def test_resume_through_another_instance_adopts_the_peer(
    settings: Settings, control: ControlInstance, control2: ControlInstance
) -> None:
    room = f"res-{uuid.uuid4().hex[:8]}"
    sig_a, alice, sig_b, bob, alice_id, listener = await _call(settings, control, control, room)
    sig_a2: SignalingClient | None = None
    try:
        # alice receives too (a consumer of bob's), so the adopted peer has one.
        bob_producer = await bob.publish(ToneTrack(freq=660.0))
        await sig_a.wait_event("newProducer", lambda d: d["producerId"] == bob_producer)
        consumer_id, _ = await alice.subscribe(bob_producer)
        assert sig_a.resume_token is not None
        t0 = time.monotonic()
        sig_a.drop()
        sig_a2, reply = await SignalingClient.resume(
            control2.ws(room), participant(settings, "alice", room), sig_a.resume_token
        )
        alice.signaling = sig_a2
        log.info("measured: adopted by the other instance %.2f s after the drop",
                 time.monotonic() - t0)  # fmt: skip
        assert reply["peerId"] == alice_id
        assert reply["consumers"] == [{"consumerId": consumer_id, "producerId": bob_producer}]
        assert {t["direction"] for t in reply["transports"]} == {"send", "recv"}
        await asyncio.sleep(1.0)
        assert listener.longest_gap(t0, time.monotonic()) < GAP_S
        # The adopting instance owns alice's objects now: mute, a consumer's request, leave.
        await sig_a2.request("pauseProducer", {"producerId": next(iter(alice.producers))})
        await sig_b.wait_event("producerPaused", timeout=5)
        await sig_a2.request("requestKeyFrame", {"consumerId": consumer_id})
        async with httpx.AsyncClient(base_url=control.http, timeout=5) as http:
            r = await http.get(
                f"/api/rooms/{room}/participants",
                headers={"authorization": f"Bearer {admin(settings)}"},
            )
        listed = {p["identity"]: p["instance"] for p in r.json()}
        assert set(listed) == {"alice", "bob"} and listed["alice"] != listed["bob"]
        assert _left(sig_b, alice_id) == []
        await sig_a2.request("leave")
        await sig_b.wait_event("peerLeft", lambda d: d["peerId"] == alice_id, 5)
    finally:
        await listener.stop()
        await alice.close()
        await bob.close()
        for sig in (sig_a2, sig_b, sig_a):
            if sig is not None:
                await sig.close()


@pytest.fixture
async def short_grace(
    sfu: SfuProcess, redis_server: RedisServer
) -> AsyncIterator[tuple[Settings, ControlInstance]]:
    settings = Settings(env="test", resume_grace_s=2.0)
    async with ControlInstance.running(settings, sfu_url=sfu.url, redis_url=redis_server.url) as c:
        yield settings, c


async def test_past_the_grace_period_it_is_a_leave_and_the_resume_is_refused(
    short_grace: tuple[Settings, ControlInstance],
) -> None:
    settings, control = short_grace
    room = f"res-{uuid.uuid4().hex[:8]}"
    sig_a, alice, sig_b, bob, alice_id, listener = await _call(settings, control, control, room)
    try:
        token = sig_a.resume_token
        assert token is not None
        t0 = time.monotonic()
        sig_a.drop()
        left = await sig_b.wait_event("peerLeft", lambda d: d["peerId"] == alice_id, 10)
        elapsed = time.monotonic() - t0
        log.info("measured: peerLeft (%s) %.2f s after the drop (grace 2 s)", left["reason"],
                 elapsed)  # fmt: skip
        assert left["reason"] == "disconnected"
        assert 1.8 <= elapsed <= 4.0
        with pytest.raises(SignalingReplyError) as refused:
            await SignalingClient.resume(
                control.ws(room), participant(settings, "alice", room), token
            )
        assert refused.value.code == "session_expired"
        # ... and a new join is served (a new peer id).
        sig_new, _, joined = await join(settings, control, room, "alice")
        assert joined["peerId"] != alice_id
        await sig_new.close()
    finally:
        await listener.stop()
        await alice.close()
        await bob.close()
        await sig_b.close()


async def test_refused_resumes_have_their_own_codes_and_others_are_still_served(
    settings: Settings, control: ControlInstance
) -> None:
    room = f"res-{uuid.uuid4().hex[:8]}"
    sig_a, alice, _ = await join(settings, control, room, "alice")
    sig_b, bob, _ = await join(settings, control, room, "bob")
    opened: list[SignalingClient] = [sig_a, sig_b]

    async def resume(identity: str, token: str, r: str = room) -> dict[str, Any]:
        sig, reply = await SignalingClient.resume(
            control.ws(r), participant(settings, identity, r), token
        )
        opened.append(sig)
        return reply

    async def refused(identity: str, token: str, r: str = room) -> str:
        with pytest.raises(SignalingReplyError) as e:
            await resume(identity, token, r)
        return e.value.code

    try:
        alice_token = sig_a.resume_token
        assert alice_token is not None and sig_b.resume_token is not None
        sig_a.drop()
        # Another participant's token: refused, and alice's token is not spent by it.
        assert await refused("bob", alice_token) == "resume_mismatch"
        assert await refused("alice", alice_token, f"{room}-other") == "resume_mismatch"
        assert await refused("alice", "x" * 43) == "session_expired"  # no such token
        first = await resume("alice", alice_token)
        assert await refused("alice", alice_token) == "resume_token_used"
        # Removed by an admin while away: the resume says the session ended.
        sig_live = opened[-1]
        assert sig_live.resume_token is not None and sig_live.resume_token == first["resumeToken"]
        sig_live.drop()
        await sig_b.wait_event("peerReconnecting", timeout=5)
        async with httpx.AsyncClient(base_url=control.http, timeout=5) as http:
            r = await http.delete(
                f"/api/rooms/{room}/participants/alice",
                headers={"authorization": f"Bearer {admin(settings)}"},
            )
            assert r.status_code == 204
        await sig_b.wait_event("peerLeft", timeout=5)
        code = await refused("alice", first["resumeToken"])
        assert code == "session_ended"
        # Malformed, and a resume on a socket that already joined.
        with pytest.raises(SignalingReplyError) as e:
            await sig_b.request("resume", {"resumeToken": "short"})
        assert e.value.code == "invalid_data"
        with pytest.raises(SignalingReplyError) as e:
            await sig_b.request("resume", {"resumeToken": sig_b.resume_token})
        assert e.value.code == "invalid_state"
        # bob is still served, and alice can join anew.
        await bob.publish(ToneTrack(freq=550.0))
        sig_new, _, joined = await join(settings, control, room, "alice")
        opened.append(sig_new)
        assert joined["producers"] and joined["resumeToken"]
    finally:
        await alice.close()
        await bob.close()
        for sig in opened:
            await sig.close()


# the control-plane instance serving a participant is killed -----------------------------
@contextlib.asynccontextmanager
async def control_process(
    sfu: SfuProcess, redis_server: RedisServer, log_path: Path, **more: str
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`python -m mediaplane.control` on loopback: (its ws:// base, the process);
    `more`: more MEDIAPLANE_ settings."""
    port = free_tcp_port()
    env = {**os.environ, "MEDIAPLANE_ENV": "test", "MEDIAPLANE_REDIS_URL": redis_server.url,
           "MEDIAPLANE_SFU_HOST": "127.0.0.1", "MEDIAPLANE_SFU_PORT": str(sfu.port),
           "MEDIAPLANE_PORT": str(port), "MEDIAPLANE_LOG_LEVEL": "INFO", **more}  # fmt: skip
    with log_path.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mediaplane.control", env=env, stdout=sink, stderr=sink
        )
    try:
        async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(30):
            while True:
                assert proc.returncode is None, log_path.read_text()[-2000:]
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
        yield f"ws://127.0.0.1:{port}", proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def test_the_instance_serving_a_participant_is_killed_it_resumes_on_the_other(
    settings: Settings, sfu: SfuProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    room = f"res-{uuid.uuid4().hex[:8]}"
    async with (
        control_process(sfu, redis_server, tmp_path / "a.log") as (url_a, proc_a),
        control_process(sfu, redis_server, tmp_path / "b.log") as (url_b, _),
    ):
        sig_a, alice, sig_b, bob, alice_id, listener = await _call(settings, url_a, url_b, room)
        sig_a2: SignalingClient | None = None
        try:
            assert sig_a.resume_token is not None
            t0 = time.monotonic()
            os.kill(proc_a.pid, signal.SIGKILL)
            await proc_a.wait()
            await sig_a.wait_closed(5)
            sig_a2, reply = await SignalingClient.resume(
                f"{url_b}/ws/rooms/{room}", participant(settings, "alice", room),
                sig_a.resume_token,
            )  # fmt: skip
            alice.signaling = sig_a2
            log.info("measured: resumed on the surviving instance %.2f s after the kill",
                     time.monotonic() - t0)  # fmt: skip
            assert reply["peerId"] == alice_id
            await asyncio.sleep(1.5)
            gap = listener.longest_gap(t0, time.monotonic())
            log.info("measured: longest audio gap at bob across the kill %.3f s", gap)
            assert gap < GAP_S
            assert _left(sig_b, alice_id) == []
            await sig_a2.request("pauseProducer", {"producerId": next(iter(alice.producers))})
            await sig_b.wait_event("producerPaused", timeout=5)
            await sig_a2.request("leave")
            await sig_b.wait_event("peerLeft", lambda d: d["peerId"] == alice_id, 5)
        finally:
            await listener.stop()
            await alice.close()
            await bob.close()
            for sig in (sig_a2, sig_b, sig_a):
                if sig is not None:
                    await sig.close()


async def _listed(http_base: str, settings: Settings, room: str) -> list[str]:
    async with httpx.AsyncClient(base_url=http_base, timeout=5) as http:
        r = await http.get(
            f"/api/rooms/{room}/participants",
            headers={"authorization": f"Bearer {admin(settings)}"},
        )
        r.raise_for_status()
        return [p["identity"] for p in r.json()]


async def test_the_peers_of_a_dead_instance_leave_after_the_grace_period(
    settings: Settings, sfu: SfuProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Nobody resumes the peer of a SIGKILLed instance: a surviving instance makes it
    leave once the grace period is over (no ghost participant, its tracks closed in the
    SFU, its token expired), and the room goes on serving."""
    room = f"res-{uuid.uuid4().hex[:8]}"
    grace = {"MEDIAPLANE_RESUME_GRACE_S": "2"}
    async with (
        control_process(sfu, redis_server, tmp_path / "a.log", **grace) as (url_a, proc_a),
        control_process(sfu, redis_server, tmp_path / "b.log", **grace) as (url_b, _),
    ):
        http_b = url_b.replace("ws://", "http://")
        sig_a, alice, sig_b, bob, alice_id, listener = await _call(settings, url_a, url_b, room)
        opened = [sig_a, sig_b]
        try:
            token = sig_a.resume_token
            assert token is not None
            producer_id = next(iter(alice.producers))
            t0 = time.monotonic()
            os.kill(proc_a.pid, signal.SIGKILL)
            await proc_a.wait()
            assert len(await _listed(http_b, settings, room)) == 2  # away, not gone yet
            left = await sig_b.wait_event("peerLeft", lambda d: d["peerId"] == alice_id, 20)
            elapsed = time.monotonic() - t0
            log.info("measured: the dead instance's peer left %.1f s after the kill (grace 2 s,"
                     " heartbeat TTL 5 s, sweep every 2 s)", elapsed)  # fmt: skip
            assert left["reason"] == "disconnected"
            assert 2.0 <= elapsed <= 12.0, elapsed
            closed = [d for e, d in sig_b.events if e == "producerClosed"]
            assert [d["producerId"] for d in closed] == [producer_id]
            assert await _listed(http_b, settings, room) == ["bob"]
            # Its audio stopped at bob: the SFU producer is gone with its transport.
            stop = time.monotonic()
            await asyncio.sleep(1.0)
            assert listener.loud_after(stop + 0.3) == 0
            with pytest.raises(SignalingReplyError) as refused:
                sig, _ = await SignalingClient.resume(
                    f"{url_b}/ws/rooms/{room}", participant(settings, "alice", room), token
                )
                opened.append(sig)
            assert refused.value.code == "session_expired"
            # The room goes on: alice joins anew through the survivor and bob hears her.
            sig_new, alice_new, joined = await _join(settings, url_b, room, "alice")
            opened.append(sig_new)
            assert joined["peerId"] != alice_id
            new_producer = await alice_new.publish(ToneTrack(freq=660.0))
            await sig_b.wait_event("newProducer", lambda d: d["producerId"] == new_producer, 5)
            await alice_new.close()
        finally:
            await listener.stop()
            await alice.close()
            await bob.close()
            for sig in opened:
                await sig.close()


async def test_a_graceful_stop_ends_its_sessions_cleanly(
    settings: Settings, sfu: SfuProcess, redis_server: RedisServer
) -> None:
    """An instance stopped gracefully ends its sessions at once (a leave, reason 'server
    shutting down', told to the peers of the other instances), leaves nothing of them in
    Redis, and their resume is refused with session_ended (the page joins anew)."""
    room = f"res-{uuid.uuid4().hex[:8]}"
    inst_a = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis_server.url)
    async with ControlInstance.running(
        settings, sfu_url=sfu.url, redis_url=redis_server.url
    ) as inst_b:
        sig_a, alice, sig_b, bob, alice_id, listener = await _call(settings, inst_a, inst_b, room)
        opened = [sig_a, sig_b]
        try:
            token = sig_a.resume_token
            assert token is not None
            t0 = time.monotonic()
            await inst_a.stop()
            left = await sig_b.wait_event("peerLeft", lambda d: d["peerId"] == alice_id, 5)
            log.info("measured: peerLeft %.2f s after the graceful stop began",
                     time.monotonic() - t0)  # fmt: skip
            assert left["reason"] == "server shutting down"
            assert await _listed(inst_b.http, settings, room) == ["bob"]
            assert await sig_a.wait_closed(5) is not None
            with pytest.raises(SignalingReplyError) as refused:
                sig, _ = await SignalingClient.resume(
                    inst_b.ws(room), participant(settings, "alice", room), token
                )
                opened.append(sig)
            assert refused.value.code == "session_ended"
            sig_new, alice_new, _ = await join(settings, inst_b, room, "alice")
            opened.append(sig_new)
            new_producer = await alice_new.publish(ToneTrack(freq=660.0))
            await sig_b.wait_event("newProducer", lambda d: d["producerId"] == new_producer, 5)
            await alice_new.close()
        finally:
            await listener.stop()
            await alice.close()
            await bob.close()
            for sig in opened:
                await sig.close()
