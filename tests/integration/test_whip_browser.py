"""WHIP and WHEP with a client we did not write: the npm package `whip-whep` (medooze's
WHIPClient / WHEPClient, bundled with esbuild) in Debian's Chromium (libwebrtc), from an
opaque origin so every request goes through our CORS preflight. It trickles its ICE
candidates with PATCH and deletes its session; the WHIP test also restarts ICE."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser, Page

from mediaplane.peer import PatternVideoTrack, ToneTrack
from mediaplane.settings import Settings
from tests.integration.test_whip import join, new_room
from tests.support.chromium import chromium
from tests.support.control import ControlInstance, participant
from tests.support.mediacheck import collect_track_audio, dominant_frequency, rms

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)
WHIPJS = Path(__file__).resolve().parents[1] / "support" / "whipjs"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip

PUBLISH_JS = """async ({ url, token, freq }) => {
  const ac = new AudioContext({ sampleRate: 48000 });
  const osc = ac.createOscillator();
  osc.frequency.value = freq;
  const gain = ac.createGain();
  gain.gain.value = 0.3;
  const dest = ac.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  osc.start();
  const canvas = document.createElement('canvas');
  canvas.width = 320; canvas.height = 240;
  document.body.appendChild(canvas);
  const g = canvas.getContext('2d');
  let n = 0;
  window.drawTimer = setInterval(() => {
    g.fillStyle = '#203060'; g.fillRect(0, 0, 320, 240);
    g.fillStyle = '#ffffff'; g.fillRect((n * 8) % 304, 0, 16, 240);
    n += 1;
  }, 33);
  const pc = new RTCPeerConnection();
  pc.addTransceiver(dest.stream.getAudioTracks()[0], { direction: 'sendonly' });
  pc.addTransceiver(canvas.captureStream(30).getVideoTracks()[0], { direction: 'sendonly' });
  window.pc = pc;
  window.client = new WHIPClient();
  await window.client.publish(pc, url, token);
  return window.client.resourceURL.href;
}"""

VIEW_JS = """async ({ url, token }) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  window.remote = new MediaStream();
  pc.ontrack = (e) => window.remote.addTrack(e.track);
  window.pc = pc;
  window.client = new WHEPClient();
  await window.client.view(pc, url, token);
  return window.client.resourceURL.href;
}"""

# Decoded audio of the received track, sampled through WebAudio (the PCM goes to numpy).
CAPTURE_PCM_JS = """async () => {
  const el = new Audio();
  el.srcObject = window.remote;
  el.muted = true;
  await el.play().catch(() => {});
  const ac = new AudioContext({ sampleRate: 48000 });
  const src = ac.createMediaStreamSource(new MediaStream(window.remote.getAudioTracks()));
  const analyser = ac.createAnalyser();
  analyser.fftSize = 32768;
  src.connect(analyser);
  await new Promise((r) => setTimeout(r, 2000));
  const data = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(data);
  return { rate: ac.sampleRate, samples: Array.from(data) };
}"""

INBOUND_VIDEO_JS = """async () => {
  const out = { framesDecoded: 0, width: 0, height: 0 };
  (await window.pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      out.framesDecoded = s.framesDecoded || 0;
      out.width = s.frameWidth || 0; out.height = s.frameHeight || 0;
    }
  });
  return out;
}"""


@pytest.fixture(scope="module")
def whip_bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    esbuild = WHIPJS / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        pytest.fail("the whip-whep npm client is not installed: run scripts/bootstrap.sh")
    out = tmp_path_factory.mktemp("whipjs") / "whip-whep.js"
    subprocess.run(
        [str(esbuild), "entry.js", "--bundle", "--format=iife", f"--outfile={out}"],
        cwd=WHIPJS, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return out.read_text()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium(CHROMIUM_ARGS) as b:
        yield b


async def client_page(
    browser: Browser, control: ControlInstance, bundle: str, errors: list[str]
) -> Page:
    """A page on another origin (localhost) than the endpoints (127.0.0.1): CORS applies."""
    page = await (await browser.new_context()).new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    await page.goto(f"http://localhost:{control.port}/healthz")
    await page.add_script_tag(content=bundle)
    return page


async def wait_state(page: Page, state: str, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while (now := await page.evaluate("window.pc.connectionState")) != state:
            assert now not in ("failed", "closed"), now
            await asyncio.sleep(0.1)


async def bar_positions(track: Any, count: int) -> list[int]:
    """Decode frames; the column of the white bar the page draws into each."""
    out = []
    async with asyncio.timeout(20):
        while len(out) < count:
            frame = await track.recv()
            luma = frame.to_ndarray(format="gray").astype(np.float32)
            out.append(int(np.argmax(luma.mean(axis=0))))
    return out


async def test_chromium_whip_client_publishes_into_a_room(
    settings: Settings, control: ControlInstance, browser: Browser, whip_bundle: str
) -> None:
    room = await new_room(settings, control)
    sig, bob, _ = await join(settings, control, room, "bob")
    errors: list[str] = []
    page = await client_page(browser, control, whip_bundle, errors)
    try:
        token = participant(settings, "chromium", room)
        resource = await page.evaluate(
            PUBLISH_JS, {"url": f"{control.http}/whip/rooms/{room}", "token": token, "freq": 880}
        )
        assert "/whip/sessions/" in resource
        await wait_state(page, "connected")
        news = {}
        for kind in ("audio", "video"):
            event = await sig.wait_event(
                "newProducer", lambda d, k=kind: d["identity"] == "chromium" and d["kind"] == k
            )
            news[kind] = event["producerId"]
        _, audio = await bob.subscribe(news["audio"])
        _, video = await bob.subscribe(news["video"])
        pcm = (await collect_track_audio(audio, 3.0))[48000:]
        freq = dominant_frequency(pcm, 48000)
        assert rms(pcm) > 0.05 and abs(freq - 880.0) <= 5.0, (freq, rms(pcm))
        bars = await bar_positions(video, 40)
        assert len(set(bars)) > 10, bars

        # ICE restart through the library: PATCH with If-Match "*" and new credentials.
        await page.evaluate("window.client.restart()")
        await asyncio.sleep(1.0)
        await wait_state(page, "connected")
        after = (await collect_track_audio(audio, 2.0))[24000:]
        freq_after = dominant_frequency(after, 48000)
        assert abs(freq_after - 880.0) <= 5.0, freq_after

        # stop() closes the peer connection (DTLS close_notify) and then DELETEs:
        # whichever arrives first ends the session.
        await page.evaluate("window.client.stop()")
        left = await sig.wait_event("peerLeft", lambda d: True, 5)
        assert left["reason"] in ("left", "DTLS closed"), left
        assert errors == [], errors
        log.info(
            "measured: chromium WHIP tone %.2f Hz rms %.3f, after ICE restart %.2f Hz; "
            "%d distinct bar positions in 40 decoded frames",
            freq, rms(pcm), freq_after, len(set(bars)),
        )  # fmt: skip
    finally:
        await page.context.close()
        await bob.close()
        await sig.close()


async def test_chromium_whep_client_plays_a_participant(
    settings: Settings, control: ControlInstance, browser: Browser, whip_bundle: str
) -> None:
    room = await new_room(settings, control)
    sig, alice, _ = await join(settings, control, room, "alice")
    errors: list[str] = []
    page = await client_page(browser, control, whip_bundle, errors)
    try:
        await alice.publish(ToneTrack(freq=587.0))
        await alice.publish(PatternVideoTrack())
        token = participant(settings, "viewer", room, can_publish=False)
        url = f"{control.http}/whep/rooms/{room}/participants/alice"
        resource = await page.evaluate(VIEW_JS, {"url": url, "token": token})
        assert "/whep/sessions/" in resource
        await wait_state(page, "connected")
        captured = await page.evaluate(CAPTURE_PCM_JS)
        pcm = np.asarray(captured["samples"], dtype=np.float32)
        freq = dominant_frequency(pcm, int(captured["rate"]))
        assert rms(pcm) > 0.02 and abs(freq - 587.0) <= 5.0, (freq, rms(pcm))
        first = await page.evaluate(INBOUND_VIDEO_JS)
        await asyncio.sleep(1.5)
        second = await page.evaluate(INBOUND_VIDEO_JS)
        assert second["framesDecoded"] > first["framesDecoded"] > 0, (first, second)
        assert (second["width"], second["height"]) == (320, 240)
        await page.evaluate("window.client.stop()")
        left = await sig.wait_event("peerLeft", lambda d: True, 5)
        assert left["reason"] in ("left", "DTLS closed"), left
        assert errors == [], errors
        log.info(
            "measured: chromium WHEP tone %.2f Hz rms %.3f; video %dx%d, %d frames decoded",
            freq, rms(pcm), second["width"], second["height"], second["framesDecoded"],
        )  # fmt: skip
    finally:
        await page.context.close()
        await alice.close()
        await sig.close()
