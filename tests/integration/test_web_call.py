"""The call page in a real Chromium (Debian's, driven by Playwright) with fake devices."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.support.control import ControlInstance, admin
from tests.support.mediacheck import decode_audio, probe_streams
from tests.support.pages import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)
# Screenshots go here (gitignored); scripts/refresh-docs-pictures.sh copies them to docs/.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def screenshot_path(name: str) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return str(SCREENSHOTS / name)


STATS_JS = """async () => {
  const out = { audio: { bytes: 0 }, video: { bytes: 0, frames: 0 } };
  for (const { consumer } of window.mediaplane.consumers.values()) {
    const report = await consumer.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      out[s.kind].bytes += s.bytesReceived || 0;
      if (s.kind === 'video') out.video.frames += s.framesDecoded || 0;
    });
  }
  return out;
}"""


async def open_call(
    browser: Browser,
    control: ControlInstance,
    room: str,
    name: str,
    errors: list[str],
    token: str | None = None,
) -> Page:
    """`token`: a token link (a control plane off loopback has no open join)."""
    context = await browser.new_context(viewport={"width": 1000, "height": 700})
    page = await context.new_page()
    page.on("console", lambda m: errors.append(f"{name}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{name}: {e}"))
    link = f"&token={token}" if token else ""
    await page.goto(f"{control.http}/?room={room}&name={name}{link}")
    await page.get_by_role("button", name="Join").click()
    await expect(page.get_by_role("status")).to_contain_text(f"In room {room}", timeout=15000)
    return page


async def rising(page: Page) -> tuple[dict[str, Any], dict[str, Any]]:
    first: dict[str, Any] = await page.evaluate(STATS_JS)
    await asyncio.sleep(1.5)
    second: dict[str, Any] = await page.evaluate(STATS_JS)
    return first, second


async def test_two_browsers_see_and_hear_each_other(
    browser: Browser, control: ControlInstance
) -> None:
    room = f"web-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    alice = await open_call(browser, control, room, "Alice", errors)
    bob = await open_call(browser, control, room, "Bob", errors)
    for page, other in ((alice, "Bob"), (bob, "Alice")):
        await expect(page.get_by_role("figure", name=other)).to_be_visible(timeout=15000)
    for page in (alice, bob):
        async with asyncio.timeout(15):
            while True:
                first, second = await rising(page)
                if (
                    second["video"]["frames"] > first["video"]["frames"] > 0
                    and second["audio"]["bytes"] > first["audio"]["bytes"] > 0
                ):
                    break
        log.info("measured: %s", second)
    await alice.get_by_role("button", name="Mute mic").click()
    bob_view_of_alice = bob.get_by_role("figure", name="Alice")
    await expect(bob_view_of_alice.locator(".label")).to_have_class("label muted", timeout=5000)
    await alice.get_by_role("button", name="Leave").click()
    await expect(bob.get_by_role("figure", name="Alice")).to_have_count(0, timeout=5000)
    assert errors == [], errors


async def test_admin_records_from_the_dashboard(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    room = f"dash-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    caller = await open_call(browser, stack.control, room, "Alice", errors)
    viewer = await open_call(browser, stack.control, room, "Bob", errors)
    await expect(viewer.get_by_role("figure", name="Alice")).to_be_visible(timeout=15000)
    await viewer.screenshot(path=screenshot_path("call-page.png"), full_page=True)

    context = await browser.new_context(
        viewport={"width": 1200, "height": 900}, accept_downloads=True
    )
    admin_page = await context.new_page()
    admin_page.on(
        "console", lambda m: errors.append(f"admin: {m.text}") if m.type == "error" else None
    )
    admin_page.on("pageerror", lambda e: errors.append(f"admin: {e}"))
    await admin_page.goto(f"{stack.control.http}/admin")
    await admin_page.get_by_label("Admin token").fill(admin(stack.settings))
    await admin_page.get_by_role("button", name="Sign in").click()
    alice = await caller.evaluate("window.mediaplane.peerId")
    assert alice
    record = admin_page.get_by_role("button", name=re.compile(r"^Record Alice-"))
    await record.click()
    await expect(caller.locator("#recording-indicator")).to_be_visible(timeout=10000)
    # The catalog lists every room's recordings; this test looks at its room's row.
    recordings = admin_page.get_by_role("table", name="Recordings").locator("tr", has_text=room)
    await expect(recordings.locator("[data-state=running]")).to_have_count(1, timeout=10000)
    await asyncio.sleep(3.0)
    await admin_page.screenshot(path=screenshot_path("dashboard.png"), full_page=True)
    await recordings.get_by_role("button", name=re.compile(r"^Stop recording Alice-")).click()
    await expect(recordings.locator("[data-state=completed]")).to_have_count(1, timeout=15000)
    await expect(caller.locator("#recording-indicator")).to_be_hidden(timeout=10000)
    # Other tests' recordings of an "Alice-..." are listed too: this room's row.
    await recordings.get_by_role("button", name=re.compile(r"^Play Alice-")).click()
    async with admin_page.expect_download() as info:
        await admin_page.get_by_role("link", name=re.compile(r"^Download ")).click()
    out = tmp_path / "from-dashboard.webm"
    await (await info.value).save_as(out)
    streams = {s.codec_type: s for s in probe_streams(out, count_frames=True)}
    assert set(streams) == {"audio", "video"}
    assert (streams["video"].frames or 0) > 30
    pcm = decode_audio(out)
    log.info(
        "measured: dashboard recording %.2f s audio, %s video frames",
        len(pcm) / 48000,
        streams["video"].frames,
    )
    assert len(pcm) / 48000 > 2.0
    assert errors == [], errors


@pytest.fixture
async def own_control(
    settings: Settings, redis_server: RedisServer
) -> AsyncIterator[tuple[SfuProcess, ControlInstance]]:
    """An SFU of this test's own: its worker is killed."""
    sfu = await SfuProcess.start(settings, port=0, num_workers=1)
    try:
        async with ControlInstance.running(
            settings, sfu_url=sfu.url, redis_url=redis_server.url
        ) as inst:
            yield sfu, inst
    finally:
        await sfu.stop()


async def media_flows(page: Page) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            first, second = await rising(page)
            if (
                second["video"]["frames"] > first["video"]["frames"] > 0
                and second["audio"]["bytes"] > first["audio"]["bytes"] > 0
            ):
                return second


async def test_pages_reconnect_after_an_sfu_worker_dies(
    browser: Browser, own_control: tuple[SfuProcess, ControlInstance]
) -> None:
    sfu, control = own_control
    room = f"web-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    alice = await open_call(browser, control, room, "Alice", errors)
    bob = await open_call(browser, control, room, "Bob", errors)
    await media_flows(bob)
    os.kill(sfu.worker_pids[0], signal.SIGKILL)
    for page, other in ((alice, "Bob"), (bob, "Alice")):
        # The user is told, then the page is back in the room by itself.
        await wait_until(
            page,
            "window.mediaplane.statusLog.some("
            "s => s.startsWith('Reconnecting: the media server restarted'))",
            timeout_ms=10000,
        )
        await wait_until(
            page, "window.mediaplane.statusLog.at(-1).startsWith('In room')", timeout_ms=20000
        )
        await expect(page.get_by_role("figure", name=other)).to_be_visible(timeout=15000)
    after = await media_flows(bob)
    log.info("measured: after the worker restart bob receives %s", after)
    # Media errors from the dead transports are expected in the console; no page errors.
    assert errors == [], errors


async def test_pages_fit_a_phone(browser: Browser, control: ControlInstance) -> None:
    context = await browser.new_context(
        viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    await page.goto(f"{control.http}/?room=phone-{uuid.uuid4().hex[:4]}&name=Pat")
    await page.get_by_role("button", name="Join").click()
    await expect(page.get_by_role("status").first).to_contain_text("In room", timeout=15000)
    for path in ("/", "/admin"):
        if path == "/admin":
            await page.goto(f"{control.http}/admin")
        overflow = await page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, overflow)
    # Keyboard: the join form is reachable and operable without a mouse.
    await page.goto(f"{control.http}/?room=kbd-{uuid.uuid4().hex[:4]}&name=Kay")
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.id")
    assert focused == "room"
    await context.close()


async def test_page_reconnects_after_losing_its_connection(
    browser: Browser, settings: Settings, sfu: SfuProcess, redis_server: RedisServer
) -> None:
    """The signaling connection drops because the control plane restarts under the
    page. A graceful stop ends the instance's sessions (a leave, 'server shutting
    down'), so the page's resume is refused (session_ended): the page says the
    connection was lost, then that the session expired, joins anew by itself as a new
    peer and gets media again. (A socket lost while the session lives resumes instead:
    test_web_outage, test_signaling_resume.)"""
    control = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis_server.url)
    room = f"web-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    alice = await open_call(browser, control, room, "Alice", errors)
    bob = await open_call(browser, control, room, "Bob", errors)
    await media_flows(bob)
    before = [await page.evaluate("window.mediaplane.peerId") for page in (alice, bob)]
    port = control.port
    await control.stop()
    for page in (alice, bob):
        await wait_until(
            page,
            "window.mediaplane.statusLog.some(s => s.startsWith('Connection lost'))",
            timeout_ms=10000,
        )
    control = await ControlInstance.start(
        settings, sfu_url=sfu.url, redis_url=redis_server.url, port=port
    )
    try:
        for page, other in ((alice, "Bob"), (bob, "Alice")):
            await wait_until(
                page, "window.mediaplane.statusLog.at(-1).startsWith('In room')", timeout_ms=20000
            )
            await expect(page.get_by_role("figure", name=other)).to_be_visible(timeout=15000)
        await media_flows(bob)
        for page, old_id in zip((alice, bob), before, strict=True):
            status = await page.evaluate("window.mediaplane.statusLog")
            assert "Session expired; joining again..." in status, status
            assert not [s for s in status if s.startswith("Reconnected")], status
            assert await page.evaluate("window.mediaplane.peerId") != old_id
    finally:
        await control.stop()
    # The browser logs the failed WebSocket attempts while the server is down; those
    # are the loss itself. Anything else would be a fault of the page.
    assert [e for e in errors if "WebSocket connection to" not in e] == [], errors


# What a page decodes from everyone else: video frames and the audio's energy (the
# sum of squared decoded samples), both computed from the media, not from events.
DECODED_JS = """async () => {
  const out = { frames: 0, audioEnergy: 0, audioSamples: 0, consumers: 0 };
  for (const { consumer } of window.mediaplane.consumers.values()) {
    out.consumers += 1;
    (await consumer.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') out.frames += s.framesDecoded || 0;
      if (s.kind !== 'audio') return;
      out.audioEnergy += s.totalAudioEnergy || 0;
      out.audioSamples += s.totalSamplesReceived || 0;
    });
  }
  return out;
}"""


async def decoded_over(page: Page, seconds: float) -> dict[str, float]:
    """How much video and audio energy `page` decoded from the others in `seconds`."""
    first = await page.evaluate(DECODED_JS)
    await asyncio.sleep(seconds)
    second = await page.evaluate(DECODED_JS)
    return {
        "frames": second["frames"] - first["frames"],
        "audioEnergy": second["audioEnergy"] - first["audioEnergy"],
        "audioSamples": second["audioSamples"] - first["audioSamples"],
        "consumers": second["consumers"],
    }


async def test_a_rejoin_publishes_only_what_the_user_had_on(
    browser: Browser, settings: Settings, sfu: SfuProcess, redis_server: RedisServer
) -> None:
    """Alice mutes her microphone and stops her camera; the control plane restarts
    under her page, which rejoins (a graceful stop ends the session: the resume is
    refused, the page joins anew as a new peer). Bob's page decodes no frame and no sound of hers
    (the reported bug: her camera was decoded again 12.8 s after the link came back),
    until she turns them on again, and then it does (the check can see media)."""
    control = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis_server.url)
    room = f"web-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    try:
        alice = await open_call(browser, control, room, "Alice", errors)
        bob = await open_call(browser, control, room, "Bob", errors)
        async with asyncio.timeout(20):
            while True:  # live first: Bob hears and sees Alice
                live = await decoded_over(bob, 1.5)
                if live["frames"] > 0 and live["audioEnergy"] > 0:
                    break
        log.info("measured: live, bob decoded from alice in 1.5 s: %s", live)
        await alice.get_by_role("button", name="Mute mic").click()
        await alice.get_by_role("button", name="Stop camera").click()
        await expect(alice.get_by_role("button", name="Unmute mic")).to_be_visible()
        await expect(alice.get_by_role("button", name="Start camera")).to_be_visible()
        alice_id = await alice.evaluate("window.mediaplane.peerId")
        port = control.port
        await control.stop()
        await wait_until(
            alice,
            "window.mediaplane.statusLog.some(s => s.startsWith('Connection lost'))",
            timeout_ms=10000,
        )
        control = await ControlInstance.start(
            settings, sfu_url=sfu.url, redis_url=redis_server.url, port=port
        )
        for page in (alice, bob):
            await wait_until(
                page, "window.mediaplane.statusLog.at(-1).startsWith('In room')", timeout_ms=20000
            )
        status = await alice.evaluate("window.mediaplane.statusLog")
        assert "Session expired; joining again..." in status, status
        assert await alice.evaluate("window.mediaplane.peerId") != alice_id  # a new join
        # Bob consumes Alice's two tracks again (she is published, paused) ...
        await wait_until(
            bob, "[...window.mediaplane.consumers.values()].length === 2", timeout_ms=15000
        )
        # ... and for 15 s (longer than the 12.8 s of the report) decodes nothing of her.
        quiet = await decoded_over(bob, 15.0)
        log.info("measured: after the rejoin, muted, bob decoded from alice in 15 s: %s", quiet)
        assert quiet["frames"] == 0, quiet
        assert quiet["audioEnergy"] == 0, quiet
        await expect(alice.get_by_role("button", name="Unmute mic")).to_be_visible()
        await expect(alice.get_by_role("button", name="Start camera")).to_be_visible()
        # She turns both on: now Bob sees and hears her (the same measure detects media).
        await alice.get_by_role("button", name="Unmute mic").click()
        await alice.get_by_role("button", name="Start camera").click()
        async with asyncio.timeout(20):
            while True:
                back = await decoded_over(bob, 1.5)
                if back["frames"] > 0 and back["audioEnergy"] > 0:
                    break
        log.info("measured: unmuted again, bob decoded from alice in 1.5 s: %s", back)
    finally:
        await control.stop()
    assert [e for e in errors if "WebSocket connection to" not in e] == [], errors
