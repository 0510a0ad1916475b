"""The camera codec by setting (issue 20 item 1, MEDIAPLANE_VIDEO_CODEC): VP9 as one SVC
encoding (L3T3_KEY), H.264 as three simulcast layers. Real Chromium on loopback, the
real SFU and media manager: the publisher sends the codec asked for, a subscriber's
thumbnail gets a lower spatial layer than a large tile, and a recording of the
participant decodes in that codec at the publisher's full size."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.integration.test_recording_e2e import wait_rec
from tests.integration.test_recording_layer import HEIGHTS_JS, _until, frame_sizes
from tests.integration.test_web_call import open_call
from tests.support.chromium import CHROMIUM_ARGS, chromium
from tests.support.control import ControlInstance
from tests.support.mediacheck import probe_streams
from tests.support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)

# The publisher's camera: its codec and, per encoding (rid, or the one SVC encoding),
# the size it sends and the scalability mode.
OUTBOUND_JS = """async () => {
  const stats = await window.mediaplane.producers.video.getStats();
  const codecs = {};
  stats.forEach((s) => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
  const out = [];
  stats.forEach((s) => {
    if (s.type === 'outbound-rtp') out.push({ rid: s.rid || null, codec: codecs[s.codecId],
      width: s.frameWidth || 0, height: s.frameHeight || 0, mode: s.scalabilityMode || null,
      frames: s.framesEncoded || 0, limited: s.qualityLimitationReason, active: s.active });
  });
  return { camera: window.mediaplane.cameraCodec, encodings: out };
}"""
MIME = {"vp9": "video/VP9", "h264": "video/H264"}
CODEC_NAME = {"vp9": "vp9", "h264": "h264"}  # ffprobe's names


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """The fake camera at 15 fps: three H.264 encoders (OpenH264) at 30 fps made the CPU
    scale the layers down on the shared 2 cores (top 180p, lowest 45p at load 20)."""
    args = [a for a in CHROMIUM_ARGS if a != "--use-fake-device-for-media-stream"]
    args.append("--use-fake-device-for-media-stream=fps=15")
    async with chromium(args) as b:
        yield b


@pytest.fixture(params=["vp9", "h264"])
async def codec_control(
    request: pytest.FixtureRequest, stack: Stack
) -> AsyncIterator[tuple[str, ControlInstance]]:
    codec: str = request.param
    settings = stack.settings.model_copy(update={"video_codec": codec})
    async with ControlInstance.running(
        settings, sfu_url=stack.sfu_url, redis_url=stack.redis_url
    ) as control:
        yield codec, control


async def _layer_heights(publisher: Page) -> tuple[int, int]:
    """(the lowest, the top) layer's height the publisher encodes now: its r0 and r2
    encodings (0 while dynacast has one off), or the one SVC encoding's and a quarter of
    it (a CPU-short encoder scales them all)."""
    encodings = (await publisher.evaluate(OUTBOUND_JS))["encodings"]
    by_rid = {e["rid"]: e["height"] for e in encodings}
    if len(encodings) == 1:
        return by_rid[None] // 4, by_rid[None]
    return by_rid.get("r0", 0), by_rid.get("r2", 0)


async def _height_at(page: Page, publisher: Page, grid: str, which: int) -> tuple[int, float]:
    """The height `page` decodes once it is the publisher's lowest (`which` 0) or top (1)
    layer's after a grid change (within 20 s: the layer switch, and the publisher
    restarting a layer dynacast had off)."""
    await page.evaluate(f"document.getElementById('tiles').style.gridTemplateColumns = '{grid}'")
    t0 = time.monotonic()
    seen: list[tuple[int, tuple[int, int]]] = []  # (decoded, (lowest, top) sent)

    async def reached() -> bool:
        height, layers = int(await page.evaluate(HEIGHTS_JS)), await _layer_heights(publisher)
        seen.append((height, layers))
        return height > 0 and height == layers[which]

    try:
        await _until(f"the height for {grid}", reached, 20)
    except TimeoutError:
        why = (await publisher.evaluate(OUTBOUND_JS))["encodings"]  # CPU-scaled, inactive?
        raise AssertionError(f"{grid}: (decoded, (lowest, top) sent) {seen[-5:]}; {why}") from None
    return seen[-1][0], time.monotonic() - t0


async def test_the_camera_codec_is_the_settings_with_its_layers(
    browser: Browser,
    stack: Stack,
    codec_control: tuple[str, ControlInstance],
    tmp_path: Path,
) -> None:
    codec, control = codec_control
    room = f"codec-{codec}-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    alice = await open_call(browser, control, room, "Alice", errors)
    bob = await open_call(browser, control, room, "Bob", errors)
    await alice.evaluate("() => { document.getElementById('tiles').style.display = 'none'; }")
    await expect(bob.get_by_role("figure", name="Alice")).to_be_visible(timeout=15000)
    sent: dict[str, Any] = await alice.evaluate(OUTBOUND_JS)
    assert sent["camera"] == codec, sent  # this Chromium has it: no fallback to VP8
    assert {e["codec"] for e in sent["encodings"]} == {MIME[codec]}, sent
    if codec == "vp9":
        assert [e["mode"] for e in sent["encodings"]] == ["L3T3_KEY"], sent
    else:
        assert sorted(e["rid"] for e in sent["encodings"]) == ["r0", "r1", "r2"], sent

    small, small_s = await _height_at(bob, alice, "160px 160px", 0)
    large, large_s = await _height_at(bob, alice, "900px", 1)
    assert 0 < small < large, (small, large)
    peer = await alice.evaluate("window.mediaplane.peerId")
    identity = await bob.evaluate(f"window.mediaplane.peers.get('{peer}').identity")
    async with stack.http() as http:
        http.base_url = control.http
        r = await http.post(f"/api/rooms/{room}/recordings", json={"identity": identity})
        assert r.status_code == 202, r.text
        rec = await wait_rec(http, room, r.json()["id"], lambda x: x["state"] == "running")
        # What the top layer is meanwhile (Chromium scales every layer down when the CPU
        # is short: then the recording is smaller too, as in test_recording_layer.py).
        tops: Counter[int] = Counter()
        for _ in range(12):
            tops[(await _layer_heights(alice))[1]] += 1
            await asyncio.sleep(0.5)
        top = tops.most_common(1)[0][0]
        done = (await http.post(f"/api/rooms/{room}/recordings/{rec['id']}/stop")).json()
        assert done["state"] == "completed", done
        got = await http.get(f"/api/rooms/{room}/recordings/{rec['id']}/file")
        assert got.status_code == 200
    out = tmp_path / f"alice-{codec}.{'webm' if codec == 'vp9' else 'mkv'}"
    out.write_bytes(got.content)
    streams = {s.codec_type: s for s in probe_streams(out)}
    sizes = Counter(size for _, size in frame_sizes(out))
    log.info("measured: %s: publisher %s; bob decodes %d px in a thumbnail (%.1f s after "
             "the change), %d px in a large tile (%.1f s); recording %s frames by size %s (the "
             "top layer's heights meanwhile %s)", codec, sent, small, small_s, large, large_s,
             streams["video"].codec_name, dict(sizes), dict(tops))  # fmt: skip
    assert streams["video"].codec_name == CODEC_NAME[codec], streams
    full, count = sizes.most_common(1)[0]
    assert full.endswith(f"x{top}") and count > 30, sizes
    assert errors == [], errors
