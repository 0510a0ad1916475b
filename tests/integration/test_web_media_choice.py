"""People without a camera or microphone, or who refuse them, still join (call page in
a real Chromium): a viewer is asked for nothing and receives; a refused permission or
no device leaves the user in the room receiving, told why; a page on an insecure
origin (plain http on a network address) says why it can have no media."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Playwright, async_playwright, expect

from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.integration.test_web_call import decoded_over, open_call
from tests.support import netns
from tests.support.chromium import CHROMIUM_ARGS
from tests.support.control import ControlInstance, admin, participant
from tests.support.pages import wait_until

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

FAKE_DEVICE_FLAGS = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
NO_DEVICE_FLAGS = [a for a in CHROMIUM_ARGS if a not in FAKE_DEVICE_FLAGS]
# Counts the page's getUserMedia calls (a viewer must make none: no prompt at all).
COUNT_GUM = """
window.__gum = 0;
if (navigator.mediaDevices) {
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (c) => { window.__gum += 1; return real(c); };
}
"""


@pytest.fixture(scope="module")
async def pw() -> AsyncIterator[Playwright]:
    async with async_playwright() as p:
        yield p


async def launch(pw: Playwright, args: list[str]) -> Browser:
    return await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=args)


async def new_page(
    browser: Browser, name: str, errors: list[str], *, desktop_ua: bool = False
) -> Page:
    """`desktop_ua`: the User-Agent a desktop Chromium sends ("Chrome/N", not headless
    "HeadlessChrome/N"). On an insecure origin mediasoup-client can tell the browser only
    from it: navigator.userAgentData exists in secure contexts alone."""
    ua = None
    if desktop_ua:
        major = browser.version.split(".")[0]
        ua = (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{major}.0.0.0 Safari/537.36"
        )
    context = await browser.new_context(viewport={"width": 1000, "height": 700}, user_agent=ua)
    page = await context.new_page()
    await page.add_init_script(COUNT_GUM)
    page.on("console", lambda m: errors.append(f"{name}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{name}: {e}"))
    return page


async def receives(page: Page, timeout_s: float = 20.0) -> dict[str, Any]:
    """Until `page` decodes video frames and audio energy from the others."""
    import asyncio

    async with asyncio.timeout(timeout_s):
        while True:
            got = await decoded_over(page, 1.5)
            if got["frames"] > 0 and got["audioEnergy"] > 0:
                return got


async def tracks_of(settings: Settings, base: str, room: str) -> dict[str, list[str]]:
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        r = await http.get(
            f"/api/rooms/{room}/participants",
            headers={"authorization": f"Bearer {admin(settings)}"},
        )
        r.raise_for_status()
        return {p["name"]: sorted(t["kind"] for t in p["tracks"]) for p in r.json()}


async def test_a_viewer_is_asked_for_nothing_and_receives(
    pw: Playwright, settings: Settings, control: ControlInstance
) -> None:
    room = f"view-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    sender = await launch(pw, CHROMIUM_ARGS)
    # No fake device, no fake UI: a prompt here would be denied.
    bare = await launch(pw, [*NO_DEVICE_FLAGS, "--deny-permission-prompts"])
    try:
        alice = await open_call(sender, control, room, "Alice", errors)
        vic = await new_page(bare, "Vic", errors)
        await vic.goto(f"{control.http}/?room={room}&name=Vic")
        await vic.get_by_label("Join as a viewer").check()
        await vic.get_by_role("button", name="Join").click()
        await expect(vic.get_by_role("status").first).to_have_text(
            f"In room {room} as Vic (viewer)", timeout=15000
        )
        await expect(vic.get_by_role("figure", name="Alice")).to_be_visible(timeout=15000)
        got = await receives(vic)
        log.info("measured: the viewer decoded from alice in 1.5 s: %s", got)
        assert await vic.evaluate("window.__gum") == 0  # never asked: no prompt
        assert await vic.evaluate("Object.keys(window.mediaplane.producers).length") == 0
        await expect(vic.get_by_role("button", name="Mute mic")).to_be_disabled()
        await expect(vic.get_by_role("button", name="Stop camera")).to_be_disabled()
        await expect(vic.locator("#media-error")).to_be_hidden()
        await expect(alice.get_by_role("figure", name="Vic")).to_be_visible(timeout=10000)
        assert await tracks_of(settings, control.http, room) == {
            "Alice": ["audio", "video"], "Vic": [],
        }  # fmt: skip
    finally:
        await bare.close()
        await sender.close()
    assert errors == [], errors


async def test_refused_or_missing_devices_leave_the_user_in_the_room_receiving(
    pw: Playwright, settings: Settings, control: ControlInstance
) -> None:
    room = f"deny-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    sender = await launch(pw, CHROMIUM_ARGS)
    # Fake devices but no fake UI: the permission prompt is denied (nothing granted).
    denying = await launch(
        pw, [*NO_DEVICE_FLAGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts"]
    )
    # Permission granted, but no device at all (this machine has none).
    deviceless = await launch(pw, [*NO_DEVICE_FLAGS, "--use-fake-ui-for-media-stream"])
    try:
        alice = await open_call(sender, control, room, "Alice", errors)
        for browser, name, says in (
            (denying, "Dan", "Camera and microphone were refused: you are in the room"),
            (deviceless, "Nia", "No camera or microphone found: you are in the room"),
        ):
            page = await new_page(browser, name, errors)
            await page.goto(f"{control.http}/?room={room}&name={name}")
            await page.get_by_role("button", name="Join").click()
            await expect(page.get_by_role("status").first).to_have_text(
                f"In room {room} as {name}", timeout=15000
            )
            await expect(page.get_by_role("alert").filter(has_text=says)).to_be_visible()
            await expect(page.locator("#media-error")).to_contain_text("receive the others")
            got = await receives(page)
            log.info("measured: %s (%s) decoded from alice in 1.5 s: %s", name, says, got)
            assert await page.evaluate("window.__gum") >= 1  # it did ask
            await expect(page.get_by_role("button", name="Mute mic")).to_be_disabled()
            await expect(alice.get_by_role("figure", name=name)).to_be_visible(timeout=10000)
        assert await tracks_of(settings, control.http, room) == {
            "Alice": ["audio", "video"], "Dan": [], "Nia": [],
        }  # fmt: skip
    finally:
        await deviceless.close()
        await denying.close()
        await sender.close()
    # Chromium itself logs nothing for a denied prompt; the page reports, not throws.
    assert errors == [], errors


@pytest.fixture
async def lan_control(
    redis_server: RedisServer,
) -> AsyncIterator[tuple[netns.Lan, ControlInstance]]:
    """A plain-http control plane (and SFU) on the bridge's address: a network
    origin, not loopback."""
    reason = netns.available()
    if reason is not None:
        pytest.skip(reason)
    lan = netns.Lan.create(1)
    try:
        settings = Settings(env="test", rtc_listen_ip=lan.host_ip)
        sfu = await SfuProcess.start(settings, port=0, num_workers=1)
        try:
            control = await ControlInstance.start(
                settings, sfu_url=sfu.url, redis_url=redis_server.url, host=lan.host_ip
            )
            try:
                yield lan, control
            finally:
                await control.stop()
        finally:
            await sfu.stop()
    finally:
        lan.close()


async def test_an_insecure_origin_says_why_media_is_unavailable(
    pw: Playwright, settings: Settings, lan_control: tuple[netns.Lan, ControlInstance]
) -> None:
    _, control = lan_control
    room = f"insec-{uuid.uuid4().hex[:6]}"
    # Token links: open join is refused on a network address (docs/security.md).
    link = {n: participant(settings, n, room) for n in ("Alice", "Ian", "Jo")}
    errors: list[str] = []
    # Alice's browser is told to treat the origin as secure (as an https page would be).
    sender = await launch(
        pw, [*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={control.http}"]
    )
    plain = await launch(pw, CHROMIUM_ARGS)  # fake devices and UI: only the origin is wrong
    try:
        alice = await open_call(sender, control, room, "Alice", errors, link["Alice"])
        page = await new_page(plain, "Ian", errors, desktop_ua=True)
        await page.goto(f"{control.http}/?room={room}&name=Ian&token={link['Ian']}")
        assert await page.evaluate("window.isSecureContext") is False
        note = page.get_by_role("note")
        await expect(note).to_be_visible()
        await expect(note).to_contain_text(
            f"this page was opened over {control.http}, which browsers do not treat as secure"
        )
        await expect(note).to_contain_text("Open it over https")
        await expect(page.get_by_label("Join as a viewer")).to_be_checked()
        await page.get_by_role("button", name="Join").click()
        await expect(page.get_by_role("status").first).to_have_text(
            f"In room {room} as Ian (viewer)", timeout=15000
        )
        await expect(page.locator("#media-error")).to_contain_text("not treat as secure")
        got = await receives(page)  # WebRTC itself works on an insecure origin
        log.info("measured: the insecure page decoded from alice in 1.5 s: %s", got)
        await expect(alice.get_by_role("figure", name="Ian")).to_be_visible(timeout=10000)
        await wait_until(page, "window.__gum === 0", timeout_ms=1000)
        # Someone who unticks "viewer" anyway is in the room too, told the same reason.
        jo = await new_page(plain, "Jo", errors, desktop_ua=True)
        await jo.goto(f"{control.http}/?room={room}&name=Jo&token={link['Jo']}")
        await jo.get_by_label("Join as a viewer").uncheck()
        await jo.get_by_role("button", name="Join").click()
        await expect(jo.get_by_role("status").first).to_have_text(
            f"In room {room} as Jo", timeout=15000
        )
        await expect(jo.get_by_role("alert").filter(has_text="not treat as secure")).to_be_visible()
        await receives(jo)
    finally:
        await plain.close()
        await sender.close()
    assert errors == [], errors
