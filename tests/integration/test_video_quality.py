"""Simulcast in real Chromium: the layer follows the subscriber's tile, a hidden tile's
consumer is paused on the SFU, and the publisher stops encoding layers nobody takes
(dynacast). docs/video-quality.md has the policy.

Heights are compared with what the publisher's encoder reports for each layer (its
outbound-rtp stats by rid), not with fixed numbers: on a loaded 2-core machine Chromium
may scale a layer down for CPU (qualityLimitationReason says so, and is logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from mediaplane.sfu import SfuClient
from tests.integration.test_web_call import open_call
from tests.support.control import ControlInstance

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)

LAYERS_JS = """() => {
  const p = window.mediaplane.producers.video;
  return p ? p.rtpParameters.encodings.map((e) => e.rid) : [];
}"""
OUTBOUND_JS = """async () => {
  const out = {};
  (await window.mediaplane.producers.video.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp') out[s.rid] = { frames: s.framesEncoded || 0,
      height: s.frameHeight || 0, limited: s.qualityLimitationReason };
  });
  return out;
}"""
INBOUND_JS = """async () => {
  for (const [id, { consumer }] of window.mediaplane.consumers) {
    if (consumer.kind !== 'video') continue;
    let got = null;
    (await consumer.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      got = { id, frames: s.framesDecoded || 0, height: s.frameHeight || 0 };
    });
    if (got) return got;
  }
  return null;
}"""
LARGE = "900px"
CONSUMER_IDS_JS = """() => [...window.mediaplane.consumers].map(([id, { consumer }]) =>
  ({ id, kind: consumer.kind }))"""
TRY_JS = """async ([method, data]) => {
  try { return { ok: true, data: await window.mediaplane.request(method, data) }; }
  catch (e) { return { ok: false, message: e.message }; }
}"""


async def _inbound(page: Page) -> dict[str, Any]:
    got: dict[str, Any] | None = await page.evaluate(INBOUND_JS)
    assert got is not None, "no video consumer"
    return got


async def _outbound(page: Page) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = await page.evaluate(OUTBOUND_JS)
    return out


async def _until(what: str, check: Any, timeout: float) -> float:
    """Seconds until `check()` is true (fails after `timeout`)."""
    t0 = time.monotonic()
    last: Any = None
    while time.monotonic() - t0 < timeout:
        ok, last = await check()
        if ok:
            return time.monotonic() - t0
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not after {timeout} s (last seen {last})")


async def _receives_layer(bob: Page, alice: Page, rid: str, timeout: float) -> float:
    async def check() -> tuple[bool, Any]:
        inbound: dict[str, Any] | None = await bob.evaluate(INBOUND_JS)
        outbound = await _outbound(alice)
        if inbound is None:
            return False, "no video consumer yet"
        want = outbound.get(rid, {}).get("height", 0)
        return want > 0 and inbound["height"] == want, (inbound, outbound)

    return await _until(f"bob receives layer {rid}", check, timeout)


async def _encoding(alice: Page, rid: str, seconds: float = 1.5) -> int:
    """Frames the publisher encoded for `rid` over `seconds`."""
    before = (await _outbound(alice)).get(rid, {}).get("frames", 0)
    await asyncio.sleep(seconds)
    return int((await _outbound(alice)).get(rid, {}).get("frames", 0)) - int(before)


async def _sfu_bytes(client: SfuClient, consumer_id: str) -> int:
    stats = await client.get_stats("consumer", consumer_id)
    return sum(int(s.get("byteCount", 0)) for s in stats if s.get("type") == "outbound-rtp")


async def test_layers_follow_tiles_hidden_tiles_pause_and_unused_layers_stop(
    browser: Browser,
    control: ControlInstance,
    client: SfuClient,
) -> None:
    room = f"sim-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    alice = await open_call(browser, control, room, "Alice", errors)
    bob = await open_call(browser, control, room, "Bob", errors)
    assert await alice.evaluate(LAYERS_JS) == ["r0", "r1", "r2"]
    tile = bob.get_by_role("figure", name="Alice")
    await expect(tile).to_be_visible(timeout=15000)

    # The page's grid at 1000 px holds three 317x238 px tiles: the middle layer (360p);
    # one tile per row (900x675): the top layer.
    took = await _receives_layer(bob, alice, "r1", 30)
    log.info("measured: middle layer after %.1f s; publisher %s", took, await _outbound(alice))
    await bob.evaluate(f"document.getElementById('tiles').style.gridTemplateColumns = '{LARGE}'")
    took = await _receives_layer(bob, alice, "r2", 30)
    log.info("measured: top layer after %.1f s; publisher %s", took, await _outbound(alice))

    # A small tile (160x120): the lowest layer, and the publisher stops the two above it.
    await bob.evaluate("document.getElementById('tiles').style.gridTemplateColumns = '160px 160px'")
    took = await _receives_layer(bob, alice, "r0", 15)
    log.info("measured: lowest layer %.1f s after the tile shrank", took)
    await _until(
        "the publisher is told layer 0",
        lambda: _pair(alice.evaluate("window.mediaplane.maxSpatialLayer?.video")),
        5,
    )
    await asyncio.sleep(1.0)  # frames already in the encoder
    stopped = {rid: await _encoding(alice, rid) for rid in ("r1", "r2", "r0")}
    log.info("measured: frames encoded in 1.5 s per layer with only r0 wanted %s", stopped)
    assert stopped["r2"] == 0 and stopped["r1"] == 0 and stopped["r0"] > 10, stopped

    # Large again: the top layer is encoded and received again.
    await bob.evaluate(f"document.getElementById('tiles').style.gridTemplateColumns = '{LARGE}'")
    took = await _receives_layer(bob, alice, "r2", 15)
    log.info("measured: top layer back %.1f s after the tile grew", took)
    assert await _encoding(alice, "r2") > 10

    # Hidden: paused on the SFU within 1 s; shown: frames again within 1 s.
    consumer_id = (await _inbound(bob))["id"]
    tile = bob.locator(f"#{await tile.get_attribute('id')}")  # found also while hidden
    await tile.evaluate("el => { el.style.display = 'none'; }")
    t_hidden = time.monotonic()
    last, last_change = await _sfu_bytes(client, consumer_id), time.monotonic()
    while time.monotonic() - last_change < 1.0:
        await asyncio.sleep(0.1)
        now = await _sfu_bytes(client, consumer_id)
        if now != last:
            last, last_change = now, time.monotonic()
        assert time.monotonic() - t_hidden < 5, "the SFU kept sending to a hidden tile"
    paused_after = last_change - t_hidden
    log.info("measured: the SFU stopped sending %.2f s after the tile was hidden", paused_after)
    assert paused_after < 1.0, paused_after
    frames = (await _inbound(bob))["frames"]
    await tile.evaluate("el => { el.style.display = ''; }")

    async def decoding() -> tuple[bool, Any]:
        now = (await _inbound(bob))["frames"]
        return now > frames, now

    shown_after = await _until("frames after the tile is shown", decoding, 5)
    log.info("measured: frames decoded again %.2f s after the tile was shown", shown_after)
    assert shown_after < 1.0, shown_after

    # Bad input: a clear error each, and nothing changes.
    ids = {c["kind"]: c["id"] for c in await bob.evaluate(CONSUMER_IDS_JS)}
    tries = {
        "absurd size": ("trackSettings", {"consumerId": ids["video"], "visible": True,
                                          "width": 10**6, "height": 10**6}),
        "audio consumer": ("trackSettings", {"consumerId": ids["audio"], "visible": False}),
        "unknown consumer": ("trackSettings", {"consumerId": "nope", "visible": False}),
        "absent layer": ("setPreferredLayers", {"consumerId": ids["video"], "spatialLayer": 3}),
    }  # fmt: skip
    codes = {"absurd size": "invalid_data", "audio consumer": "invalid_state",
             "unknown consumer": "not_found", "absent layer": "bad_request"}  # fmt: skip
    for name, (method, data) in tries.items():
        got = await bob.evaluate(TRY_JS, [method, data])
        log.info("measured: %s -> %s", name, got)
        assert not got["ok"], (name, got)
        assert got["message"].split(":")[0] == codes[name], (name, got)
    assert await _encoding(alice, "r2") > 10  # still the top layer, still flowing
    before = (await _inbound(bob))["frames"]
    await asyncio.sleep(1.0)
    assert (await _inbound(bob))["frames"] > before
    assert errors == [], errors


async def _pair(value: Any) -> tuple[bool, Any]:
    got = await value
    return got == 0, got
