"""A recording takes a simulcast camera's top layer (issue 20 item 4), even when the
only subscriber watches it in a thumbnail: the recorder's consumer (plain RTP, no tile)
wants every layer, so dynacast keeps the publisher encoding the top one, and the
recorded file decodes at the publisher's full size."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from mediaplane.sfu import SfuClient
from tests.integration.test_recording_e2e import wait_rec
from tests.integration.test_web_call import open_call
from tests.support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)

HEIGHTS_JS = """async () => {
  for (const { consumer } of window.mediaplane.consumers.values()) {
    if (consumer.kind !== 'video') continue;
    let h = 0;
    (await consumer.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp') h = s.frameHeight;
    });
    return h;
  }
  return 0;
}"""
# The top encoding's size now and why it is smaller than the camera's, if it is.
TOP_JS = """async () => {
  let top = { width: 0, height: 0 };
  (await window.mediaplane.producers.video.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.rid === 'r2')
      top = { width: s.frameWidth || 0, height: s.frameHeight || 0,
              limited: s.qualityLimitationReason };
  });
  return top;
}"""


def frame_sizes(path: Path) -> list[tuple[float, str]]:
    """Each decoded video frame's time (s) and size."""
    ffprobe = shutil.which("ffprobe")
    assert ffprobe, "ffprobe is missing"
    out = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
         "frame=width,height,pts_time,best_effort_timestamp_time",
         "-print_format", "json", str(path)],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    frames = json.loads(out).get("frames", [])
    return [
        (float(f.get("pts_time") or f.get("best_effort_timestamp_time") or 0),
         f"{f['width']}x{f['height']}")
        for f in frames
    ]  # fmt: skip


TOLD = "window.mediaplane.maxSpatialLayer?.video"  # the top layer dynacast asks for


async def _thumbnail_call(
    chromium: Browser, stack: Stack, room: str, errors: list[str]
) -> tuple[Page, Page, str]:
    """Alice publishes (watching nobody), Bob shows her in a thumbnail: the lowest layer
    is all he takes, and dynacast tells her so. (alice, bob, alice's identity)"""
    alice = await open_call(chromium, stack.control, room, "Alice", errors)
    bob = await open_call(chromium, stack.control, room, "Bob", errors)
    await alice.evaluate("() => { document.getElementById('tiles').style.display = 'none'; }")
    await expect(bob.get_by_role("figure", name="Alice")).to_be_visible(timeout=15000)
    await bob.evaluate("document.getElementById('tiles').style.gridTemplateColumns = '160px 160px'")
    await _until("told layer 0", lambda: _is(alice.evaluate(TOLD), 0), 15)
    peer = await alice.evaluate("window.mediaplane.peerId")
    identity = await bob.evaluate(f"window.mediaplane.peers.get('{peer}').identity")
    return alice, bob, str(identity)


async def _until(what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 (a page's state: polled)
            await asyncio.sleep(0.2)


async def _is(value: Awaitable[object], want: object) -> bool:
    return await value == want


async def test_a_recording_takes_the_top_layer_while_the_viewer_takes_the_lowest(
    browser: Browser,
    stack: Stack,
    client: SfuClient,
    tmp_path: Path,
) -> None:
    room = f"reclayer-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    alice, bob, identity = await _thumbnail_call(browser, stack, room, errors)
    async with stack.http() as http:
        r = await http.post(f"/api/rooms/{room}/recordings", json={"identity": identity})
        assert r.status_code == 202, r.text
        rec = await wait_rec(http, room, r.json()["id"], lambda x: x["state"] == "running")
        # The recorder wants every layer: the publisher encodes them all again.
        await _until("told layer 2", lambda: _is(alice.evaluate(TOLD), 2), 10)
        tops: list[dict[str, Any]] = []
        producer_id = await alice.evaluate("window.mediaplane.producers.video.id")
        for _ in range(16):
            tops.append(await alice.evaluate(TOP_JS))
            stats = await client.get_stats("producer", producer_id)
            log.info(
                "measured: SFU's producer streams %s",
                [
                    (x.get("rid"), x.get("score"), x.get("bitrate"), x.get("packetsLost"))
                    for x in stats
                ],
            )
            await asyncio.sleep(0.5)
        bob_height = await bob.evaluate(HEIGHTS_JS)
        done = (await http.post(f"/api/rooms/{room}/recordings/{rec['id']}/stop")).json()
        assert done["state"] == "completed", done
        got = await http.get(f"/api/rooms/{room}/recordings/{rec['id']}/file")
        assert got.status_code == 200
    out = tmp_path / "alice.webm"
    out.write_bytes(got.content)
    frames = frame_sizes(out)
    # What the publisher's top encoding sent most of the time (Chromium scales every
    # layer down when the CPU is short: then the recording is smaller too).
    full, _ = Counter(f"{t['width']}x{t['height']}" for t in tops).most_common(1)[0]
    top = next(t for t in tops if f"{t['width']}x{t['height']}" == full)
    log.info(
        "measured: top encoding over the recording %s",
        Counter((f"{t['width']}x{t['height']}", t["limited"]) for t in tops),
    )
    t0 = frames[0][0]
    reached = next((t - t0 for t, size in frames if size == full), None)
    after = [size for t, size in frames if reached is not None and t - t0 >= reached]
    log.info("measured: recording frames by size %s; top layer %s from %s s on (%d frames "
             "after, %d of them smaller); Bob decodes %d px high",
             dict(Counter(size for _, size in frames)), full, reached, len(after),
             sum(1 for size in after if size != full), bob_height)  # fmt: skip
    assert top["height"] >= 480, top  # the camera's top layer (not a CPU-scaled one)
    # The upper layers restart in the encoder (a key frame, then a bitrate ramp): the
    # recording starts lower, then stays at the top layer.
    assert reached is not None and reached < 5.0, (reached, Counter(s for _, s in frames))
    assert len(after) > 30 and all(size == full for size in after), Counter(after)
    assert 0 < bob_height < top["height"], (bob_height, top)
    assert errors == [], errors


@pytest.mark.parametrize("source", ["participant", "room"])
async def test_an_egress_or_composite_brings_the_top_layer_back(
    browser: Browser,
    stack: Stack,
    client: SfuClient,
    tmp_path: Path,
    source: str,
) -> None:
    """Egress of the participant and the room composite (issue 20 item 4): their plain-RTP
    consumers want every layer, so dynacast has the publisher encode the top one again
    and the SFU receives it, while the only WebRTC viewer still takes the lowest. (Their
    files are scaled to the egress's own size: a frame size there proves nothing of the
    layer; the SFU's inbound r2 does.)"""
    from tests.integration.test_egress import wait_egress

    room = f"eglayer-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    alice, bob, identity = await _thumbnail_call(browser, stack, room, errors)
    producer_id = await alice.evaluate("window.mediaplane.producers.video.id")
    body: dict[str, Any] = {"source": source, "output": "file", "format": "mp4",
                            "width": 640, "height": 360, "fps": 15}  # fmt: skip
    if source == "participant":
        body["identity"] = identity

    async def r2_stat(field: str) -> int:
        stats = await client.get_stats("producer", producer_id)
        return max((int(s.get(field, 0)) for s in stats if s.get("rid") == "r2"), default=0)

    async def top_encoded() -> bool:
        return int((await alice.evaluate(TOP_JS))["height"]) > 0

    async def r2_arrives(since: int) -> bool:
        return await r2_stat("packetCount") > since

    async with stack.http() as http:
        r = await http.post(f"/api/rooms/{room}/egress", json=body)
        assert r.status_code == 202, r.text
        eg = await wait_egress(http, room, r.json()["id"], lambda e: e["state"] == "running")
        t0 = asyncio.get_running_loop().time()
        await _until("told layer 2", lambda: _is(alice.evaluate(TOLD), 2), 10)
        told_after = asyncio.get_running_loop().time() - t0
        # The encoder restarts r2: it has a frame size once it encodes again (the SFU's
        # r2 bitrate alone may still be the last second's, from before it was paused).
        await _until("r2 encoded", top_encoded, 10)
        packets = await r2_stat("packetCount")
        await _until("r2 at the SFU", lambda: r2_arrives(packets), 10)
        bitrate = await r2_stat("bitrate")
        bob_height = await bob.evaluate(HEIGHTS_JS)
        top = await alice.evaluate(TOP_JS)
        stopped = await http.post(f"/api/rooms/{room}/egress/{eg['id']}/stop")
        assert stopped.status_code == 200, stopped.text
        done = stopped.json()
        assert done["state"] == "completed", done
    log.info("measured: %s egress: publisher told the top layer %.2f s after it ran; the "
             "SFU receives r2 at %d kbit/s (%sx%s); bob decodes %d px high", source,
             told_after, bitrate // 1000, top["width"], top["height"], bob_height)  # fmt: skip
    # Egress stopped: only Bob's thumbnail is left, the top layer goes off again.
    await _until("told layer 0 again", lambda: _is(alice.evaluate(TOLD), 0), 10)
    assert 0 < bob_height < top["height"], (bob_height, top)
    assert errors == [], errors
