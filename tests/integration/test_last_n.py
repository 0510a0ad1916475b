"""Last-N in real Chromium: with MEDIAPLANE_LAST_N=1 and three cameras, a viewer gets the
most recent speaker's camera at the layer its tile wants and the two others at the
lowest; the dominant speaker changes (the SFU's active speaker observer), the layers
follow; a publisher nobody takes above the lowest layer is told to stop encoding the
others (dynacast). Loopback: the link is not under test here.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.integration.test_media_loss import tone_wav
from tests.support.chromium import CHROMIUM_ARGS, chromium
from tests.support.control import ControlInstance
from tests.support.ns_chromium import join

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)
PUBLISHERS = ("Ann", "Ben", "Cat")

# Per publisher peer: the height the viewer decodes.
HEIGHTS_JS = """async () => {
  const out = {};
  for (const { consumer, peerId } of window.mediaplane.consumers.values()) {
    if (consumer.kind !== 'video') continue;
    (await consumer.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp') out[peerId] = s.frameHeight || 0;
    });
  }
  return out;
}"""
# The publisher's encoded height per rid.
RIDS_JS = """async () => {
  const out = {};
  (await window.mediaplane.producers.video.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp') out[s.rid] = s.frameHeight || 0;
  });
  return out;
}"""


@pytest.fixture(scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Browser]:
    """Chromium whose microphone sends a steady tone: the SFU's active speaker observer
    (Jitsi's dominant speaker identification) scores speech over 20 ms to ~1 s windows,
    and the default fake microphone's short beeps score as hardly speaking, so which of
    them wins after a mute was a matter of timing."""
    wav = tone_wav(tmp_path_factory.mktemp("last_n") / "tone.wav")
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"]
    async with chromium(args) as b:
        yield b


@pytest.fixture
async def control_last_1(
    settings: Settings, sfu: SfuProcess, redis_server: RedisServer
) -> AsyncIterator[ControlInstance]:
    async with ControlInstance.running(
        settings.model_copy(update={"last_n": 1}), sfu_url=sfu.url, redis_url=redis_server.url
    ) as c:
        yield c


async def _speaks(pages: dict[str, Page], who: str) -> None:
    """Only `who`'s microphone on (the others muted: their audio paused on the SFU)."""
    for name, page in pages.items():
        button = page.locator("#toggle-mic")
        muted = await button.get_attribute("aria-pressed") == "true"
        if (name == who) == muted:
            await button.click()


async def _forwarded(
    viewer: Page, pages: dict[str, Page], peers: dict[str, str], who: str, timeout: float
) -> tuple[float, dict[str, Any]]:
    """Seconds until the viewer decodes `who` at the middle layer, the others at the lowest."""
    t0 = time.monotonic()
    last: dict[str, Any] = {}
    while time.monotonic() - t0 < timeout:
        got = await viewer.evaluate(HEIGHTS_JS)
        want = {n: (await pages[n].evaluate(RIDS_JS)).get("r1" if n == who else "r0", 0)
                for n in PUBLISHERS}  # fmt: skip
        last = {n: (got.get(peers[n]), want[n]) for n in PUBLISHERS}
        if all(h == w and w > 0 for h, w in last.values()):
            return time.monotonic() - t0, last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{who} not forwarded alone after {timeout} s: (got, want) {last}")


async def test_only_the_last_speaker_is_forwarded_above_the_lowest_layer(
    browser: Browser,
    control_last_1: ControlInstance,
) -> None:
    room = f"lastn-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    url = control_last_1.http
    pages = {n: await join(browser, url, room, n, errors) for n in PUBLISHERS}
    for page in pages.values():  # publishers watch nobody: only the viewer's consumers count
        await page.evaluate("() => { document.getElementById('tiles').style.display = 'none'; }")
    peers = {n: await p.evaluate("window.mediaplane.peerId") for n, p in pages.items()}
    viewer = await join(browser, url, room, "Vic", errors, viewer=True)
    for name in PUBLISHERS:
        await expect(viewer.get_by_role("figure", name=name)).to_be_visible(timeout=20000)

    # Nobody spoke yet: the first to join is forwarded. Then Ben speaks, then Cat.
    await _speaks(pages, "Ann")
    took, got = await _forwarded(viewer, pages, peers, "Ann", 20)
    log.info("measured: Ann (first joined, speaking) alone above the lowest after %.1f s %s",
             took, got)  # fmt: skip
    for speaker in ("Ben", "Cat"):
        t0 = time.monotonic()
        await _speaks(pages, speaker)
        await expect(viewer.get_by_role("figure", name=speaker)).to_have_class(
            "tile speaking", timeout=15000
        )
        told = time.monotonic() - t0
        took, got = await _forwarded(viewer, pages, peers, speaker, 15)
        log.info("measured: %s dominant %.1f s after unmuting, forwarded alone %.1f s later %s",
                 speaker, told, took, got)  # fmt: skip
    # Dynacast: Ann and Ben, taken at the lowest layer only, are told to encode only it.
    async with asyncio.timeout(5):
        while True:
            told = {n: await pages[n].evaluate("window.mediaplane.maxSpatialLayer?.video")
                    for n in PUBLISHERS}  # fmt: skip
            if told["Ann"] == 0 and told["Ben"] == 0 and told["Cat"] != 0:
                break
            await asyncio.sleep(0.2)
    log.info("measured: publishers told to encode up to layer %s", told)
    assert errors == [], errors
