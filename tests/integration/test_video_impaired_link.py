"""Video on an impaired link, between network namespaces, in real Chromium (issue 20).

`mediaplane up` runs in namespace 0 (https, as tests/integration/test_reach_lan.py);
three publishers (one Chromium, one context each: their uplinks are not under test)
in namespace 1 send the fake camera at a known rate as three VP8 simulcast layers (Ann
a 720p camera, Ben and Cat 360p ones: on 2 cores three 720p simulcast encoders and two
subscribers' decoders left the CPU, not the link, limiting: qualityLimitationReason
cpu, 8-12.5 fps sent of 15, the unlimited subscriber missing frames too); a
subscriber in namespace 2 has its link limited to 600 kbit/s each way (tbf on its veth,
tests/support/link.py), a subscriber in namespace 3 has nothing in its way.

Each second for 30 s (after the link has settled), every subscriber's framesDecoded per
publisher is read from getStats: the limited one must decode each publisher at >= 90 %
of the rate the publisher sends the layer it gets, with no second without a decoded
frame, at a layer no higher than the unlimited one's and, for the 720p publisher, a lower
one (the unlimited subscriber decodes it at 1280x720). The unlimited subscriber is the
control: when it misses frames too, the machine, not the link, is what was measured, and
the test fails saying so (load average in the message). Each publisher's
qualityLimitationReason is logged, and the test fails when the CPU, not the link, is what
limited (the encoders must send the layers at full size and rate for the test to mean
anything).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support import netns
from tests.support.link import Link
from tests.support.ns_chromium import chromium_in, https_system, join

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(netns.available() is not None, reason=str(netns.available())),
]
log = logging.getLogger(__name__)

FPS = 15
PUBLISHERS = ("Ann", "Ben", "Cat")
LIMIT_KBIT = 600
SETTLE_S = 25
BAR = 0.9  # issue 20: >= 90 % of the sent frame rate, no second without a frame
MEASURE_S = 30
PUBLISHER_ARGS = [f"--use-fake-device-for-media-stream=fps={FPS}"]
# A 360p webcam: the page asks for 1280x720 (ideal); this camera gives 640x360 at most.
CAMERA_360P_JS = """(() => {
  const devices = navigator.mediaDevices;
  const ask = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (c) => ask(c && c.video ? { ...c, video: {
    ...(typeof c.video === 'object' ? c.video : {}),
    width: { max: 640, ideal: 640 }, height: { max: 360, ideal: 360 } } } : c);
})();"""
TILES_JS = """() => Object.fromEntries([...document.querySelectorAll('figure')].map((f) => {
  const v = f.querySelector('video');
  return [f.getAttribute('aria-label') ?? f.id, v ? `${v.clientWidth}x${v.clientHeight}` : null];
}))"""
# What the SFU estimates it may send the limited subscriber (its recv transport's stats).
SFU_STATS_JS = """async () => {
  const stats = await window.mediaplane.request('getStats');
  const out = [];
  for (const list of Object.values(stats.transports)) {
    for (const t of list) out.push({ available: t.availableOutgoingBitrate,
      sendRate: t.sendBitrate, recvRate: t.recvBitrate });
  }
  return out;
}"""
HIDE_TILES_JS = "() => { document.getElementById('tiles').style.display = 'none'; }"

# Per video consumer: whose it is, frames decoded so far, the size decoded, freezes.
INBOUND_JS = """async () => {
  const out = {};
  for (const [id, { consumer, peerId }] of window.mediaplane.consumers) {
    if (consumer.kind !== 'video') continue;
    (await consumer.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      out[peerId] = { frames: s.framesDecoded || 0, width: s.frameWidth || 0,
        height: s.frameHeight || 0, freezes: s.freezeCount || 0, lost: s.packetsLost || 0,
        bytes: s.bytesReceived || 0 };
    });
  }
  return out;
}"""
# The publisher's own peer id and, per simulcast layer (rid), what it encodes and sends.
OUTBOUND_JS = """async () => {
  const out = { peerId: window.mediaplane.peerId, layers: {} };
  const p = window.mediaplane.producers.video;
  if (!p) return out;
  (await p.getStats()).forEach((s) => {
    if (s.type !== 'outbound-rtp') return;
    out.layers[s.rid] = { frames: s.framesSent || 0, width: s.frameWidth || 0,
      height: s.frameHeight || 0, limited: s.qualityLimitationReason,
      bytes: s.bytesSent || 0, active: s.active };
  });
  return out;
}"""


@pytest.fixture
async def lan() -> AsyncIterator[netns.Lan]:
    lan = netns.Lan.create(4)  # 0: the system, 1: publishers, 2: limited, 3: unlimited
    try:
        yield lan
    finally:
        lan.close()


@pytest.fixture
async def system(lan: netns.Lan, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """The system's https URL and the SPKI pin of its certificate."""
    async with https_system(lan, 0, tmp_path) as got:
        yield got


async def _sample(pages: dict[str, Page]) -> dict[str, Any]:
    return {name: await page.evaluate(INBOUND_JS) for name, page in pages.items()}


def _sent_rate(before: dict[str, Any], after: dict[str, Any], seconds: float) -> float:
    """Frames per second the publisher sent (its lowest layer: always on, full rate)."""
    frames = after["layers"]["r0"]["frames"] - before["layers"]["r0"]["frames"]
    return float(frames) / seconds


def _received(samples: list[dict[str, Any]], who: str, peer: str, seconds: float) -> dict[str, Any]:
    """What subscriber `who` decoded of `peer` over the samples (one a second)."""
    got = [s[who].get(peer, {"frames": 0, "width": 0, "height": 0, "freezes": 0, "lost": 0,
                             "bytes": 0}) for s in samples]  # fmt: skip
    first, last = got[0], got[-1]
    widths = sorted(g["width"] for g in got[1:])
    return {
        "decoded_fps": round((last["frames"] - first["frames"]) / seconds, 1),
        "min_per_s": min(b["frames"] - a["frames"] for a, b in itertools.pairwise(got)),
        # Each second's decoded frames: a failure tells a dip (a layer switch) from a
        # uniformly low rate (a temporal layer dropped).
        "per_s": [b["frames"] - a["frames"] for a, b in itertools.pairwise(got)],
        "size": f"{last['width']}x{last['height']}",
        "median_width": widths[len(widths) // 2],
        "widths": sorted(set(widths)),
        "freezes": last["freezes"] - first["freezes"],
        "lost": last["lost"] - first["lost"],
        "kbit": round((last["bytes"] - first["bytes"]) * 8 / seconds / 1000),
    }


async def test_a_600_kbit_subscriber_decodes_three_publishers_at_a_lower_layer(
    lan: netns.Lan, system: tuple[str, str], tmp_path: Path
) -> None:
    url, spki = system
    room = f"link-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    limited_link = Link(lan, 2)
    async with async_playwright() as pw:
        browsers: list[Browser] = []
        try:
            pub_browser = await chromium_in(pw, lan, 1, spki, tmp_path, extra=PUBLISHER_ARGS)
            browsers.append(pub_browser)
            publishers = {
                n: await join(
                    pub_browser, url, room, n, errors, init_script="" if i == 0 else CAMERA_360P_JS
                )
                for i, n in enumerate(PUBLISHERS)
            }
            for page in publishers.values():
                # Publishers watch nobody (their consumers paused): only encoding costs.
                await page.evaluate(HIDE_TILES_JS)
            for browser_index in (2, 3):
                browsers.append(await chromium_in(pw, lan, browser_index, spki, tmp_path))
            with limited_link.rate(LIMIT_KBIT):
                limited = await join(browsers[1], url, room, "Slow", errors, viewer=True)
                unlimited = await join(
                    browsers[2], url, room, "Fast", errors, viewer=True, height=1100
                )
                subscribers = {"limited": limited, "unlimited": unlimited}
                for page in subscribers.values():
                    for name in PUBLISHERS:
                        await expect(page.get_by_role("figure", name=name)).to_be_visible(
                            timeout=20000
                        )
                # The unlimited subscriber shows the first publisher across its page
                # (962x722 px: the 720p layer), the others in 311x233 px tiles (their
                # cameras' top layer, 320x180).
                await unlimited.get_by_role("figure", name=PUBLISHERS[0]).evaluate(
                    "el => { el.style.gridColumn = '1 / -1'; }"
                )
                await asyncio.sleep(SETTLE_S)
                for who, page in subscribers.items():
                    tiles = await page.evaluate(TILES_JS)
                    log.info("measured: %s's video tiles (css px) %s", who, tiles)
                peer_of = {
                    n: (await p.evaluate(OUTBOUND_JS))["peerId"] for n, p in publishers.items()
                }
                out0 = {n: await p.evaluate(OUTBOUND_JS) for n, p in publishers.items()}
                samples = [await _sample(subscribers)]
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                for i in range(1, MEASURE_S + 1):
                    await asyncio.sleep(max(0.0, t0 + i - loop.time()))
                    samples.append(await _sample(subscribers))
                seconds = loop.time() - t0
                out1 = {n: await p.evaluate(OUTBOUND_JS) for n, p in publishers.items()}
                sfu_side = await limited.evaluate(SFU_STATS_JS)
        finally:
            for b in browsers:
                await b.close()

    log.info("measured: the SFU's transport to the limited subscriber %s", sfu_side)
    log.info("measured: load average %s", os.getloadavg())
    for name in PUBLISHERS:
        kbit = {
            rid: round((s["bytes"] - out0[name]["layers"].get(rid, {}).get("bytes", 0)) * 8
                       / seconds / 1000)
            for rid, s in out1[name]["layers"].items()
        }  # fmt: skip
        log.info("measured: publisher %s sends %s kbit/s: %s", name, kbit, out1[name]["layers"])
    cpu_limited = {
        n: {rid: s["limited"] for rid, s in out1[n]["layers"].items() if s["limited"] == "cpu"}
        for n in PUBLISHERS
    }
    report = {
        f"{who}/{name}": _received(samples, who, peer_of[name], seconds)
        | {"sent_fps": round(_sent_rate(out0[name], out1[name], seconds), 1)}
        for who in ("limited", "unlimited")
        for name in PUBLISHERS
    }
    for key, row in report.items():
        log.info("measured: %s %s", key, row)
    load = os.getloadavg()
    assert not any(cpu_limited.values()), f"the CPU, not the link, limited: {cpu_limited}"
    # The unlimited subscriber is the control: when it misses frames too, the machine
    # (load average in the message), not the link, is what the test measured.
    for name in PUBLISHERS:
        fast = report[f"unlimited/{name}"]
        assert fast["decoded_fps"] >= 0.9 * fast["sent_fps"] and fast["min_per_s"] > 0, (
            f"the unlimited subscriber misses frames too (load {load}): {fast}"
        )
    short = []
    for name in PUBLISHERS:
        slow, fast = report[f"limited/{name}"], report[f"unlimited/{name}"]
        # Most seconds at most at the unlimited subscriber's layer, and for Ann below it
        # (Chromium encodes a 360p camera's two lower layers only, 160x90 and 320x180:
        # libwebrtc's simulcast limit for 640x360; a 600 kbit/s link may carry both
        # 320x180 layers).
        assert slow["median_width"] <= fast["median_width"], (slow, fast)
        if name == PUBLISHERS[0]:
            assert fast["median_width"] == 1280, fast
            assert slow["median_width"] < fast["median_width"], (slow, fast)
        # Without adaptation this link decoded no frame in 23-30 s of 30.
        if slow["decoded_fps"] < BAR * slow["sent_fps"] or slow["min_per_s"] == 0:
            short.append(f"{name}: {slow['decoded_fps']} of {slow['sent_fps']} fps, "
                         f"min {slow['min_per_s']}/s")  # fmt: skip
    assert errors == [], errors
    assert short == [], f"below {BAR:.0%} of the sent rate or a second without a frame: {short}"
