"""A participant's network goes away (every packet dropped by nft in the namespace
its Chromium runs in).

Within the resume grace period (docs/signaling.md#resuming-a-session) the call does not
end: the same peer id goes on, the other page is never told it left, its media is
decoded again soon after the network returns (restore to first decoded frame, measured
and logged), and a recording of it started before the outage goes on in the same file:
its microphone is a WAV of a continuous tone, and the file decodes to the tone before
the gap, silence about the outage's length, and the tone after it. Past the grace
period it is a leave: the others are told, the REST list drops it, and once the network
is back its page is told the session expired and joins anew by itself.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from mediaplane import certificates
from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.integration.test_media_loss import TONE_HZ, tone_wav
from tests.integration.test_recording_e2e import wait_rec
from tests.integration.test_recording_layer import frame_sizes
from tests.integration.test_web_call import decoded_over, open_call
from tests.support import netns
from tests.support.chromium import CHROMIUM_ARGS
from tests.support.control import ControlInstance, admin, participant
from tests.support.link import Link
from tests.support.media import SECRET, MediaService
from tests.support.mediacheck import decode_audio, dominant_frequency, silent_runs
from tests.support.pages import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(netns.available() is not None, reason=str(netns.available())),
]
log = logging.getLogger(__name__)

GRACE_S = 40.0  # above the longest outage resumed below
SHORT_GRACE_S = 6.0  # below the outage that must end the session
OUTAGE_S = 22.0
OUTAGE_GONE_S = 20.0  # keep-alive (5 s + 5 s, plus a ping's phase) + SHORT_GRACE_S
BACK_S = 35.0
MEDIA_BACK_S = 2.0  # restore to a decoded frame at the other page (asserted, logged)
RATE = 48000
WINDOW = RATE // 10  # 100 ms: silence is measured in these
RECORD_BEFORE_S = 4.0  # recorded tone before the outage, and after the media is back
FPS_MIN = 5  # recorded camera frames a second, at least, on either side of the gap


@pytest.fixture
async def lan() -> AsyncIterator[netns.Lan]:
    lan = netns.Lan.create(1)
    try:
        yield lan
    finally:
        lan.close()


@pytest.fixture
async def bridged(
    lan: netns.Lan,
    redis_server: RedisServer,
    media: MediaService,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> AsyncIterator[tuple[Settings, ControlInstance]]:
    """An SFU and a control plane of the test's own, on the bridge's address (its resume
    grace period: the test's `grace` mark, else GRACE_S): https with a self-signed
    certificate for it, as `up` serves off loopback (without control/ws_keepalive.py the
    TLS shutdown kept a vanished socket 36.4 s, measured). Recordings go to `media`
    (the test's own media manager, on loopback, where the SFU's plain transports listen:
    plain_listen_ip; only the browsers' WebRTC is on the bridge)."""
    mark = request.node.get_closest_marker("grace")
    grace = float(mark.args[0]) if mark else GRACE_S
    settings = Settings(
        env="test", rtc_listen_ip=lan.host_ip, resume_grace_s=grace,
        data_dir=media.data_dir, media_port=media.port, media_secret=SECRET,
    )  # fmt: skip
    cert, _ = certificates.self_signed(tmp_path / "tls", [lan.host_ip])
    sfu = await SfuProcess.start(settings, port=0, num_workers=1)
    try:
        control = await ControlInstance.start(
            settings, sfu_url=sfu.url, redis_url=redis_server.url, host=lan.host_ip,
            certificate=cert,
        )  # fmt: skip
        try:
            yield settings, control
        finally:
            await control.stop()
    finally:
        await sfu.stop()


@pytest.fixture
async def browsers(
    lan: netns.Lan, bridged: tuple[Settings, ControlInstance], tmp_path: Path
) -> AsyncIterator[tuple[Browser, Browser]]:
    """(a Chromium inside the namespace: its packets leave through the veth only, its
    microphone a WAV of a continuous TONE_HZ tone; a Chromium in the test's namespace,
    Chromium's fake microphone)."""
    wrapper = tmp_path / "chromium-in-netns"
    ns = lan.namespaces[0]
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} /usr/bin/chromium "$@"\n')
    wrapper.chmod(0o755)
    _, control = bridged
    # https on the bridge's address: trust exactly that certificate's key (a secure
    # context, so getUserMedia works; any other certificate is still refused)
    assert control.certificate is not None
    pin = control.certificate.spki_sha256
    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pin}"]
    tone = f"--use-file-for-fake-audio-capture={tone_wav(tmp_path / 'tone.wav')}"
    async with async_playwright() as pw:
        inside = await pw.chromium.launch(
            executable_path=str(wrapper), headless=True, args=[*args, tone]
        )
        try:
            outside = await pw.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=args
            )
            try:
                yield inside, outside
            finally:
                await outside.close()
        finally:
            await inside.close()


async def participants(settings: Settings, control: ControlInstance, room: str) -> list[str]:
    async with httpx.AsyncClient(base_url=control.http, verify=control.verify, timeout=5) as http:
        r = await http.get(
            f"/api/rooms/{room}/participants",
            headers={"authorization": f"Bearer {admin(settings)}"},
        )
        r.raise_for_status()
        return [p["identity"] for p in r.json()]


async def frames_from(page: Page, peer_id: str) -> int:
    """Video frames `page` decoded so far from `peer_id`'s tracks."""
    return int(
        await page.evaluate(
            """async (peer) => {
              let frames = 0;
              for (const c of window.mediaplane.consumers.values()) {
                if (c.peerId !== peer || c.consumer.closed) continue;
                (await c.consumer.getStats()).forEach((s) => {
                  if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
                  frames += s.framesDecoded || 0;
                });
              }
              return frames;
            }""",
            peer_id,
        )
    )


async def watch_left(page: Page) -> None:
    await page.evaluate(
        "window.__left = []; window.__reconnecting = []; const ws = window.mediaplane.ws; "
        "ws.addEventListener('message', (m) => { const d = JSON.parse(m.data); "
        "if (d.event === 'peerLeft') window.__left.push(d.data.peerId); "
        "if (d.event === 'peerReconnecting') window.__reconnecting.push(d.data.peerId); });"
    )


@pytest.mark.parametrize("outage_s", [5.0, 25.0])
async def test_an_outage_within_the_grace_period_does_not_end_the_call(
    browsers: tuple[Browser, Browser],
    lan: netns.Lan,
    bridged: tuple[Settings, ControlInstance],
    media: MediaService,
    outage_s: float,
) -> None:
    settings, control = bridged
    inside, outside = browsers
    room = f"out-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    # Token links: open join is refused on a network address (docs/security.md).
    alice_token, bob_token = (participant(settings, n, room) for n in ("alice", "bob"))
    alice = await open_call(inside, control, room, "Alice", errors, alice_token)
    bob = await open_call(outside, control, room, "Bob", errors, bob_token)
    await expect(bob.get_by_role("figure", name="Alice")).to_be_visible(timeout=15000)
    await wait_decoding(bob, 20.0)
    alice_id = await alice.evaluate("window.mediaplane.peerId")
    alice_identity = await alice_identity_of(settings, control, room)
    async with admin_http(settings, control) as http, media.client() as jobs:
        # A recording of Alice (camera and the tone), from before the outage to after it.
        r = await http.post(f"/api/rooms/{room}/recordings", json={"identity": alice_identity})
        assert r.status_code == 202, r.text
        rec = await wait_rec(http, room, r.json()["id"], lambda x: x["state"] == "running")
        await asyncio.sleep(RECORD_BEFORE_S)
        await watch_left(bob)
        with Link(lan, 0).outage():
            cut = time.monotonic()
            await asyncio.sleep(outage_s)
            frozen = await frames_from(bob, alice_id)
            during = (await http.get(f"/api/rooms/{room}/recordings/{rec['id']}")).json()
            job_during = (await jobs.get(f"/jobs/{rec['media_job_id']}")).json()
        back = time.monotonic()
        media_back: float | None = None
        async with asyncio.timeout(BACK_S):
            while media_back is None:
                if await frames_from(bob, alice_id) > frozen:
                    media_back = time.monotonic() - back
                else:
                    await asyncio.sleep(0.05)
        await wait_decoding(bob, 10.0)  # video and audio, both
        await asyncio.sleep(RECORD_BEFORE_S)
        r = await http.post(f"/api/rooms/{room}/recordings/{rec['id']}/stop")
        assert r.status_code == 200, r.text
        done = r.json()
        listed = (await http.get("/api/recordings", params={"room": room})).json()
        got = await http.get(f"/api/rooms/{room}/recordings/{rec['id']}/file")
        assert got.status_code == 200, got.status_code
        out = media.data_dir.parent / Path(str(done["file"])).name
        out.write_bytes(got.content)
        manager_jobs = (await jobs.get("/jobs")).json()
    outage = back - cut
    status = await alice.evaluate("window.mediaplane.statusLog")
    told_at = await alice.evaluate(
        "window.mediaplane.statusTimes.map((t) => (t - performance.now()) / 1000)"
    )
    now = time.monotonic()
    told = [f"{now + t - back:+.2f} s {s}" for s, t in zip(status, told_at, strict=True)]
    log.info(
        "measured: %.0f s outage: alice's video decoded by bob again %.2f s after the "
        "network returned (same peer, %d resumes, %d ICE restarts, %d sockets; status %s)",
        outage_s, media_back,
        await alice.evaluate("window.mediaplane.resumes"),
        await alice.evaluate("window.mediaplane.iceRestarts"),
        await alice.evaluate("window.mediaplane.link.sockets"), told[-3:],
    )  # fmt: skip
    assert await alice.evaluate("window.mediaplane.peerId") == alice_id
    assert await bob.evaluate("window.__left") == []
    assert alice_identity_of_list(await participants(settings, control, room))
    assert await bob.get_by_role("figure", name="Alice").count() == 1
    assert not [s for s in status if s.startswith("Session expired")], status
    if outage_s > 15:  # the socket died: the page resumed and said so
        assert await bob.evaluate("window.__reconnecting") == [alice_id]
        assert await alice.evaluate("window.mediaplane.resumes") >= 1
        assert any(s.startswith("Reconnecting") or s.startswith("Connection lost")
                   for s in status), status  # fmt: skip
        assert status[-1].startswith("Reconnected in room"), status
    assert media_back <= MEDIA_BACK_S, f"media back {media_back:.2f} s after the restore"
    assert [e for e in errors if "WebSocket" not in e and "ICE" not in e] == [], errors
    # One recording, one job, one file, for the whole call: the outage neither ended it
    # nor made another.
    assert during["state"] == "running", during
    assert job_during["state"] == "running", job_during
    assert done["state"] == "completed", done
    assert [x["id"] for x in listed] == [rec["id"]], listed
    assert done["media_job_id"] == rec["media_job_id"], (done, rec)
    assert [(j["id"], j["state"]) for j in manager_jobs] == [(rec["media_job_id"], "completed")]
    assert [s["state"] for s in done["history"]] == [
        "starting", "running", "stopping", "completed"
    ], done["history"]  # fmt: skip
    files = [p for p in media.root.rglob("*") if p.is_file()]
    assert [p.relative_to(media.root).as_posix() for p in files] == [done["file"]], files
    # Its audio decodes to the tone, a silence about the outage's length, the tone again.
    pcm = decode_audio(out, timeline=True)
    span = done["stopped_at"] - done["started_at"]
    runs = silent_runs(pcm, WINDOW)
    assert runs, "no silence in the file: the gap was not kept"
    first_q, end_q = max(runs, key=lambda r: r[1] - r[0])
    silence_s = (end_q - first_q) * WINDOW / RATE
    before = pcm[: max(0, first_q - 1) * WINDOW]
    after = pcm[(end_q + 1) * WINDOW :]
    f_before = dominant_frequency(before[RATE // 2 :], RATE)
    f_after = dominant_frequency(after[: len(after) - RATE // 2], RATE)
    others = [r for r in runs if r != (first_q, end_q)]
    # Its video decodes on both sides of the gap too (the longest wait between frames).
    shown = [t for t, _ in frame_sizes(out)]
    video_gap, video_back = max(
        ((b - a, b) for a, b in itertools.pairwise(shown)), default=(0.0, 0.0)
    )
    frames_after = sum(1 for t in shown if t >= video_back)
    log.info(
        "measured: video %d frames decoded, %d after a %.2f s gap", len(shown), frames_after,
        video_gap,
    )  # fmt: skip
    log.info(
        "measured: %.0f s outage (%.2f s cut): recording %.2f s for a %.2f s span; tone "
        "%.1f Hz for %.2f s, silence %.2f s (%.2f s beyond the cut; bob decoded video again "
        "%.2f s after), tone %.1f Hz for %.2f s after; other silences %s; the recorder "
        "%s stalled at the cut's end",
        outage_s, outage, len(pcm) / RATE, span, f_before, len(before) / RATE, silence_s,
        silence_s - outage, media_back, f_after, len(after) / RATE, others,
        "was" if job_during["stats"]["stalled"] else "was not",
    )  # fmt: skip
    assert abs(f_before - TONE_HZ) <= 5.0 and abs(f_after - TONE_HZ) <= 5.0, (f_before, f_after)
    assert len(before) / RATE >= RECORD_BEFORE_S - 1.0, len(before) / RATE
    assert len(after) / RATE >= RECORD_BEFORE_S - 1.0, len(after) / RATE
    # Every packet of the cut was dropped: at least the cut is silent (less the windows
    # the edges share with the tone). Beyond it, the browser's media path takes a moment
    # to come back: measured, after 5 s none (the silence 5.00 s for a 5.04-5.12 s cut);
    # after 25 s 0.24-0.75 s, each time ~0.1 s before the page said "Reconnected" (the
    # ICE restart its resumed socket carries), and each time before Bob decoded her video
    # again (0.47-1.10 s): that recovery plus a key frame, so it bounds the audio's.
    assert outage - 0.3 <= silence_s <= outage + media_back + 0.5, (silence_s, outage)
    # Outside the gap the tone is whole: no other silence but a start-up instant.
    assert sum(b - a for a, b in others) <= 5, others
    assert abs(len(pcm) / RATE - span) <= 1.0, (len(pcm) / RATE, span)
    # The video's gap is the same cut; it resumes at a key frame, asked for by the recorder
    # (a sequence gap) and by Bob's consumer alike, so little after the audio.
    assert outage - 0.3 <= video_gap <= silence_s + 1.0, (video_gap, silence_s)
    assert frames_after >= 2 * FPS_MIN and len(shown) - frames_after >= 2 * FPS_MIN, (
        len(shown), frames_after,
    )  # fmt: skip


def admin_http(settings: Settings, control: ControlInstance) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=control.http, verify=control.verify, timeout=60,
        headers={"authorization": f"Bearer {admin(settings)}"},
    )  # fmt: skip


def alice_identity_of_list(identities: list[str]) -> bool:
    return any(i.lower().startswith("alice") for i in identities)


@pytest.mark.grace(SHORT_GRACE_S)
async def test_an_outage_past_the_grace_period_is_a_leave_then_a_new_join(
    browsers: tuple[Browser, Browser],
    lan: netns.Lan,
    bridged: tuple[Settings, ControlInstance],
) -> None:
    settings, control = bridged
    inside, outside = browsers
    room = f"out-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    # Token links: open join is refused on a network address (docs/security.md).
    alice_token, bob_token = (participant(settings, n, room) for n in ("alice", "bob"))
    alice = await open_call(inside, control, room, "Alice", errors, alice_token)
    bob = await open_call(outside, control, room, "Bob", errors, bob_token)
    await expect(bob.get_by_role("figure", name="Alice")).to_be_visible(timeout=15000)
    await wait_decoding(bob, 20.0)
    alice_identity = await alice_identity_of(settings, control, room)
    alice_id = await alice.evaluate("window.mediaplane.peerId")
    await watch_left(bob)
    with Link(lan, 0).outage():
        cut = time.monotonic()
        gone_at: float | None = None
        while time.monotonic() - cut < OUTAGE_S:
            if gone_at is None:
                listed = await participants(settings, control, room)
                told = await bob.evaluate("window.__left")
                tile = await bob.get_by_role("figure", name="Alice").count()
                if alice_identity not in listed and told == [alice_id] and tile == 0:
                    gone_at = time.monotonic() - cut
                    log.info("measured: alice gone (REST list, bob's peerLeft) %.1f s in", gone_at)
            await asyncio.sleep(0.5)
        assert gone_at is not None and gone_at <= OUTAGE_GONE_S, (
            f"alice still listed or not announced gone {OUTAGE_S:g} s into the outage"
        )
    back = time.monotonic()
    await wait_until(
        alice, "window.mediaplane.statusLog.at(-1).startsWith('In room')", timeout_ms=BACK_S * 1000
    )
    await expect(bob.get_by_role("figure", name="Alice")).to_be_visible(
        timeout=max(1000, int((BACK_S - (time.monotonic() - back)) * 1000))
    )
    decoded = await wait_decoding(bob, max(5.0, BACK_S - (time.monotonic() - back)))
    status = await alice.evaluate("window.mediaplane.statusLog")
    log.info(
        "measured: alice back and decoded by bob %.1f s after the network returned: %s "
        "(alice's status log %s, %d sockets)",
        time.monotonic() - back, decoded, status,
        await alice.evaluate("window.mediaplane.link.sockets"),
    )  # fmt: skip
    assert "Session expired; joining again..." in status, status
    assert await alice.evaluate("window.mediaplane.peerId") != alice_id
    assert alice_identity in await participants(settings, control, room)
    # Failed WebSocket attempts and media errors during the outage are the outage itself.
    assert [e for e in errors if "WebSocket" not in e and "ICE" not in e] == [], errors


async def alice_identity_of(settings: Settings, control: ControlInstance, room: str) -> str:
    ids = await participants(settings, control, room)
    assert len(ids) == 2, ids
    alice = [i for i in ids if i.lower().startswith("alice")]
    assert alice, ids
    return alice[0]


async def wait_decoding(page: Page, timeout_s: float) -> dict[str, Any]:
    """Until `page` decodes video frames and audio energy from the others."""
    async with asyncio.timeout(timeout_s):
        while True:
            got = await decoded_over(page, 1.5)
            if got["frames"] > 0 and got["audioEnergy"] > 0:
                return got


CHANGE_BACK_S = 3.0  # a network change: media decoded again within this (asserted)

SELECTED_LOCAL_JS = """async () => {
  const stats = await window.mediaplane.send.getStats();
  let pair = null;
  stats.forEach((s) => { if (s.type === 'transport') pair = s.selectedCandidatePairId; });
  let local = null;
  stats.forEach((s) => { if (s.id === pair) local = s.localCandidateId; });
  let address = null;
  stats.forEach((s) => { if (s.id === local) address = s.address; });
  return address;
}"""


async def test_a_network_change_restarts_ice_without_a_rejoin(
    browsers: tuple[Browser, Browser],
    lan: netns.Lan,
    bridged: tuple[Settings, ControlInstance],
) -> None:
    """Alice's namespace moves to a new address mid-call (the old one is deleted: her
    signaling socket and ICE path on it are dead). Her page notices, resumes on a new
    socket and restarts ICE from the new address: the same peer, no rejoin, no peerLeft
    at Bob's, and Bob decodes her video again within CHANGE_BACK_S of the change."""
    settings, control = bridged
    inside, outside = browsers
    room = f"chg-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    alice_token, bob_token = (participant(settings, n, room) for n in ("alice", "bob"))
    alice = await open_call(inside, control, room, "Alice", errors, alice_token)
    bob = await open_call(outside, control, room, "Bob", errors, bob_token)
    await expect(bob.get_by_role("figure", name="Alice")).to_be_visible(timeout=15000)
    await wait_decoding(bob, 20.0)
    alice_id = await alice.evaluate("window.mediaplane.peerId")
    assert await alice.evaluate(SELECTED_LOCAL_JS) == lan.ip(0)
    await watch_left(bob)
    restarts = await alice.evaluate("window.mediaplane.iceRestarts")
    changed = time.monotonic()
    new_ip = lan.readdress(0, 200)
    # Bob's count of Alice's frames, every 50 ms: the longest stall after the change.
    samples: list[tuple[float, int]] = []
    while time.monotonic() - changed < 15.0:
        samples.append((time.monotonic(), await frames_from(bob, alice_id)))
        await asyncio.sleep(0.05)
    # When the count rose: the longest wait between rises (from the change on) ends
    # when her video was back.
    rises = [changed] + [t1 for (_, n0), (t1, n1) in itertools.pairwise(samples) if n1 > n0]
    stall_end = max(itertools.pairwise(rises), key=lambda p: p[1] - p[0], default=(0, changed))[1]
    media_back = stall_end - changed
    await wait_decoding(bob, 10.0)
    status = await alice.evaluate("window.mediaplane.statusLog")
    told_at = await alice.evaluate(
        "window.mediaplane.statusTimes.map((t) => (t - performance.now()) / 1000)"
    )
    now = time.monotonic()
    told = [f"{now + t - changed:+.2f} s {s}" for s, t in zip(status, told_at, strict=True)]
    local = await alice.evaluate(SELECTED_LOCAL_JS)
    log.info(
        "measured: network change %s -> %s: bob decodes alice's video again %.2f s after "
        "(%d ICE restarts, %d resumes, %d sockets; ICE now from %s; status %s)",
        lan.ip(0), new_ip, media_back,
        await alice.evaluate("window.mediaplane.iceRestarts") - restarts,
        await alice.evaluate("window.mediaplane.resumes"),
        await alice.evaluate("window.mediaplane.link.sockets"), local, told,
    )  # fmt: skip
    assert await alice.evaluate("window.mediaplane.peerId") == alice_id  # no rejoin
    assert not [s for s in status if s.startswith("Session expired")], status
    assert await alice.evaluate("window.mediaplane.iceRestarts") > restarts
    assert local == new_ip
    assert await bob.evaluate("window.__left") == []
    assert await bob.get_by_role("figure", name="Alice").count() == 1
    assert media_back <= CHANGE_BACK_S, f"media back {media_back:.2f} s after the change"
    assert [e for e in errors if "WebSocket" not in e and "ICE" not in e] == [], errors
