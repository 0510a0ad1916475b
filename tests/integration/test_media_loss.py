"""5 % random packet loss on a publisher's link (nft numgen in netdev ingress on both
ends of its veth, tests/support/link.py), between network namespaces, real Chromium.

The publisher (namespace 1) sends the fake camera at a known rate and, as its
microphone, a WAV file of a continuous 440 Hz tone (Chromium's
--use-file-for-fake-audio-capture). The subscriber (namespace 2, its link clean)
decodes the video (NACK/RTX repair what is lost: >= 90 % of the frames sent are
decoded) and plays the audio; the page taps the decoded PCM with Web Audio (what
Chromium's Opus decoder made of it, in-band FEC and concealment included) and keeps,
per 10 ms block, its RMS and its zero crossings. The tone must stay at 440 Hz (every
100 ms window within 10 %, at most 2 % of them beyond 5 %) with no gap (blocks far below
the tone's level) longer than 100 ms.

Opus in-band FEC is negotiated both ways (useinbandfec=1) and the SFU's receiver reports
tell the publisher the loss (~7 %), yet every lost packet is a concealment event at the
subscriber: FEC recovers none here. Likely because libopus carries FEC (LBRR) in its SILK
layer only and codes a pure tone in CELT; speech would be needed to see it. Measured
figures are logged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import struct
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

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
TONE_HZ = 440
LOSS_PERCENT = 5
MEASURE_S = 20
BLOCK_MS = 10

# Taps the publisher's decoded audio: per 10 ms block (480 samples at 48 kHz), RMS and
# zero crossings, into window.__tone while window.__tapOn. A ScriptProcessorNode: the
# page's CSP admits no worklet module the test could give it, and a late callback is
# given every sample all the same (Web Audio buffers them).
TAP_JS = """async (peerId) => {
  const entry = [...window.mediaplane.consumers.values()]
    .find((e) => e.consumer.kind === 'audio' && e.peerId === peerId);
  const ctx = new AudioContext({ sampleRate: 48000 });
  await ctx.resume();
  const tap = ctx.createScriptProcessor(4096, 1, 1);
  const acc = { n: 0, sq: 0, zc: 0, prev: 0 };
  window.__tone = [];
  window.__tapOn = false;
  tap.onaudioprocess = (e) => {
    if (!window.__tapOn) return;
    const ch = e.inputBuffer.getChannelData(0);
    for (let i = 0; i < ch.length; i += 1) {
      const x = ch[i];
      acc.sq += x * x;
      if ((x >= 0) !== (acc.prev >= 0)) acc.zc += 1;
      acc.prev = x;
      acc.n += 1;
      if (acc.n === 480) {
        window.__tone.push([Math.sqrt(acc.sq / 480), acc.zc]);
        acc.n = 0; acc.sq = 0; acc.zc = 0;
      }
    }
  };
  ctx.createMediaStreamSource(new MediaStream([entry.consumer.track])).connect(tap);
  tap.connect(ctx.destination);
  window.__tapCtx = ctx;
  return ctx.sampleRate;
}"""
INBOUND_JS = """async () => {
  const out = {};
  for (const { consumer } of window.mediaplane.consumers.values()) {
    (await consumer.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      out[s.kind] = s.kind === 'video'
        ? { frames: s.framesDecoded || 0, lost: s.packetsLost || 0,
            received: s.packetsReceived || 0, nacks: s.nackCount || 0,
            width: s.frameWidth || 0, freezes: s.freezeCount || 0 }
        : { lost: s.packetsLost || 0, received: s.packetsReceived || 0,
            concealed: s.concealedSamples || 0, samples: s.totalSamplesReceived || 0,
            fec: s.fecPacketsReceived || 0, concealmentEvents: s.concealmentEvents || 0 };
    });
    (await consumer.getStats()).forEach((s) => {
      if (s.type === 'codec' && s.mimeType === 'audio/opus') out.fmtp = s.sdpFmtpLine;
    });
  }
  return out;
}"""
OUTBOUND_JS = """async () => {
  let frames = 0, retransmitted = 0, fmtp = null;
  let reported = null;
  (await window.mediaplane.producers.audio.getStats()).forEach((s) => {
    if (s.type === 'codec') fmtp = s.sdpFmtpLine;
    if (s.type === 'remote-inbound-rtp') {
      reported = { lost: s.packetsLost, fraction: s.fractionLost };
    }
  });
  (await window.mediaplane.producers.video.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.rid === 'r0') frames = s.framesSent || 0;
    if (s.type === 'outbound-rtp') retransmitted += s.retransmittedPacketsSent || 0;
  });
  return { frames, retransmitted, fmtp, reported };
}"""


def tone_wav(path: Path, seconds: int = 10, rate: int = 48000) -> Path:
    """A mono 16-bit WAV of TONE_HZ (a whole number of cycles: it loops seamlessly)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        amplitude = 0.5 * 32767
        w.writeframes(
            b"".join(
                struct.pack("<h", round(amplitude * math.sin(2 * math.pi * TONE_HZ * i / rate)))
                for i in range(seconds * rate)
            )
        )
    return path


def analyse(blocks: list[list[float]]) -> dict[str, Any]:
    """The longest gap (ms of blocks under a tenth of the median RMS) and the frequency
    of each 100 ms window (zero crossings / 2 / 0.1 s)."""
    rms = sorted(b[0] for b in blocks)
    level = rms[len(rms) // 2]
    longest = run = 0
    for b in blocks:
        run = run + 1 if b[0] < 0.1 * level else 0
        longest = max(longest, run)
    per_window = 100 // BLOCK_MS
    freqs = [
        sum(b[1] for b in blocks[i : i + per_window]) / 2 / 0.1
        for i in range(0, len(blocks) - per_window + 1, per_window)
    ]
    return {"median_rms": round(level, 3), "longest_gap_ms": longest * BLOCK_MS,
            "freq_min": min(freqs), "freq_max": max(freqs), "windows": len(freqs),
            "off_windows": sum(1 for f in freqs if abs(f - TONE_HZ) > 0.05 * TONE_HZ),
            "far_windows": sum(1 for f in freqs if abs(f - TONE_HZ) > 0.10 * TONE_HZ)}  # fmt: skip


@pytest.fixture
async def lan() -> AsyncIterator[netns.Lan]:
    lan = netns.Lan.create(3)  # 0: the system, 1: the publisher, 2: the subscriber
    try:
        yield lan
    finally:
        lan.close()


async def test_five_percent_loss_on_the_uplink_is_repaired(lan: netns.Lan, tmp_path: Path) -> None:
    wav = tone_wav(tmp_path / "tone.wav")
    args = [f"--use-fake-device-for-media-stream=fps={FPS}",
            f"--use-file-for-fake-audio-capture={wav}",
            "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
    room = f"loss-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    async with https_system(lan, 0, tmp_path) as (url, spki), async_playwright() as pw:
        pub_browser = await chromium_in(pw, lan, 1, spki, tmp_path, extra=args)
        sub_browser = await chromium_in(pw, lan, 2, spki, tmp_path, extra=args[2:])
        try:
            publisher = await join(pub_browser, url, room, "Ann", errors)
            await publisher.evaluate(
                "() => { document.getElementById('tiles').style.display = 'none'; }"
            )
            subscriber = await join(sub_browser, url, room, "Bob", errors, viewer=True)
            await expect(subscriber.get_by_role("figure", name="Ann")).to_be_visible(timeout=20000)
            peer = await publisher.evaluate("window.mediaplane.peerId")
            rate = await subscriber.evaluate(TAP_JS, peer)
            with Link(lan, 1).loss(LOSS_PERCENT) as hits:
                await asyncio.sleep(3)  # NACK/RTX and FEC at work before measuring
                in0 = await subscriber.evaluate(INBOUND_JS)
                out0 = await publisher.evaluate(OUTBOUND_JS)
                await subscriber.evaluate("() => { window.__tapOn = true; }")
                await asyncio.sleep(MEASURE_S)
                await subscriber.evaluate("() => { window.__tapOn = false; }")
                in1 = await subscriber.evaluate(INBOUND_JS)
                out1 = await publisher.evaluate(OUTBOUND_JS)
            blocks: list[list[float]] = await subscriber.evaluate("window.__tone")
        finally:
            await sub_browser.close()
            await pub_browser.close()
    sent = out1["frames"] - out0["frames"]
    decoded = in1["video"]["frames"] - in0["video"]["frames"]
    video = {k: in1["video"][k] - in0["video"][k] for k in ("lost", "received", "nacks", "freezes")}
    audio = {k: in1["audio"][k] - in0["audio"][k] for k in in1["audio"]}
    log.info("measured: opus fmtp sent %s, received %s; the SFU's receiver reports to the "
             "publisher: %s", out1["fmtp"], in1.get("fmtp"), out1["reported"])  # fmt: skip
    tone = analyse(blocks)
    log.info("measured: %d packets dropped by the link; load %s", hits.packets, os.getloadavg())
    log.info("measured: video %d of %d frames decoded, width %d, %s, %d retransmitted by the "
             "publisher", decoded, sent, in1["video"]["width"], video,
             out1["retransmitted"] - out0["retransmitted"])  # fmt: skip
    log.info("measured: audio %s; tone at %d Hz: %s over %d blocks", audio, rate, tone, len(blocks))
    assert hits.packets > 0, "the link dropped nothing: the test measured no loss"
    assert video["lost"] > 0 or out1["retransmitted"] > out0["retransmitted"], video
    assert decoded >= 0.9 * sent, (decoded, sent)
    assert len(blocks) >= MEASURE_S * 1000 // BLOCK_MS * 0.9, len(blocks)
    assert tone["longest_gap_ms"] <= 100, tone
    # A lost packet is concealed (PLC), not recovered: see the module's docstring. A
    # concealed 20 ms bends its 100 ms window's zero crossings by a few per cent.
    # Measured: 0 to 2 of ~200 windows bent to ~395 Hz by a concealed packet; none
    # further off, none silent (FEC recovering them is not achieved: docs/video-quality.md).
    assert tone["far_windows"] <= 0.015 * tone["windows"], tone
    assert tone["off_windows"] <= 0.02 * tone["windows"], tone
    assert tone["freq_min"] >= 0.8 * TONE_HZ, tone
    assert errors == [], errors
