"""Two people on other machines call each other through `mediaplane up` (network
namespaces as hosts, tests/support/netns.py): the system (`up`: control plane, SFU,
media manager and its private Redis) runs in namespace 0, listening on 0.0.0.0 there
and announcing that namespace's address; each Chromium (Playwright, fake devices) runs
in a namespace of its own and opens https://<that address>:8080/. No setting turns TLS
on: the default (auto) does, because the control plane listens on a network address.

Chromium trusts the certificate `up` made by its public key
(--ignore-certificate-errors-spki-list, the SPKI SHA-256 of that one certificate): any
other certificate is still refused. The page is thus a secure context without
--unsafely-treat-insecure-origin-as-secure, and getUserMedia is available to it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Playwright, async_playwright, expect
from playwright.async_api import Error as PlaywrightError

from mediaplane import certificates
from mediaplane.settings import Settings
from tests.support import netns
from tests.support.chromium import CHROMIUM_ARGS
from tests.support.cli_system import trust
from tests.support.control import participant

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(netns.available() is not None, reason=str(netns.available())),
]
log = logging.getLogger(__name__)
PORT = 8080  # the default: the namespace is a machine of its own, nothing else listens


@dataclass
class Up:
    proc: asyncio.subprocess.Process
    out: Path
    data_dir: Path

    def output(self) -> str:
        return self.out.read_text(errors="replace")


@contextlib.asynccontextmanager
async def up_in(
    lan: netns.Lan, index: int, tmp_path: Path, extra: dict[str, str]
) -> AsyncIterator[Up]:
    """`python -m mediaplane.cli up` inside namespace `index` (argv, no shell)."""
    data_dir = tmp_path / f"data-{index}"
    env = {**os.environ, "MEDIAPLANE_ENV": "test", "MEDIAPLANE_DATA_DIR": str(data_dir),
           "MEDIAPLANE_SFU_NUM_WORKERS": "1", "COLUMNS": "250", **extra}  # fmt: skip
    for name in ("MEDIAPLANE_REDIS_URL", "MEDIAPLANE_URL", "MEDIAPLANE_TLS"):
        env.pop(name, None)
    out = tmp_path / f"up-{index}.out"
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", lan.namespaces[index],
            sys.executable, "-m", "mediaplane.cli", "up",
            env=env, stdout=sink, stderr=sink, start_new_session=True,
        )  # fmt: skip
    try:
        yield Up(proc, out, data_dir)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def until_shown(up: Up, text: str, timeout_s: float = 60.0) -> str:
    async with asyncio.timeout(timeout_s):
        while text not in up.output():
            assert up.proc.returncode is None, up.output()
            await asyncio.sleep(0.2)
    return up.output()


@pytest.fixture
async def lan() -> AsyncIterator[netns.Lan]:
    lan = netns.Lan.create(3)  # 0: the system, 1 and 2: one person's machine each
    try:
        yield lan
    finally:
        lan.close()


@pytest.fixture
async def system(lan: netns.Lan, tmp_path: Path) -> AsyncIterator[tuple[str, Up]]:
    address = lan.ip(0)
    extra = {"MEDIAPLANE_HOST": "0.0.0.0", "MEDIAPLANE_ANNOUNCED_ADDRESS": address,
             "MEDIAPLANE_RTC_LISTEN_IP": address}  # fmt: skip
    async with up_in(lan, 0, tmp_path, extra) as up:
        url = f"https://{address}:{PORT}"
        await until_shown(up, f"mediaplane at {url}", 90)
        yield url, up


async def chromium_in(pw: Playwright, lan: netns.Lan, index: int, spki: str, tmp: Path) -> Browser:
    wrapper = tmp / f"chromium-in-netns-{index}"
    wrapper.write_text(
        f'#!/bin/sh\nexec ip netns exec {lan.namespaces[index]} /usr/bin/chromium "$@"\n'
    )
    wrapper.chmod(0o755)
    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki}"]
    return await pw.chromium.launch(executable_path=str(wrapper), headless=True, args=args)


# Per kind, what a page decoded from the others (inbound-rtp of its consumers) and the
# address of the SFU its receive transport is connected to (the selected pair's remote).
STATS_JS = """async () => {
  const out = { video: { framesDecoded: 0, frameWidth: 0, frameHeight: 0 },
                audio: { totalAudioEnergy: 0, audioLevel: 0, totalSamplesReceived: 0 },
                remote: [] };
  for (const { consumer } of window.mediaplane.consumers.values()) {
    (await consumer.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.video.framesDecoded += s.framesDecoded || 0;
        out.video.frameWidth = Math.max(out.video.frameWidth, s.frameWidth || 0);
        out.video.frameHeight = Math.max(out.video.frameHeight, s.frameHeight || 0);
      } else {
        out.audio.totalAudioEnergy += s.totalAudioEnergy || 0;
        out.audio.audioLevel = Math.max(out.audio.audioLevel, s.audioLevel || 0);
        out.audio.totalSamplesReceived += s.totalSamplesReceived || 0;
      }
    });
  }
  const report = await window.mediaplane.recv.getStats();
  report.forEach((s) => {
    if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) {
      const r = report.get(s.remoteCandidateId);
      if (r) out.remote.push(`${r.address}:${r.port}/${r.protocol}`);
    }
  });
  return out;
}"""


async def join(browser: Browser, url: str, room: str, name: str, errors: list[str]) -> Page:
    """By a token link: open join is refused off loopback (docs/security.md)."""
    link = participant(Settings(env="test"), name, room)  # up's secrets in env=test
    context = await browser.new_context(viewport={"width": 1000, "height": 700})
    page = await context.new_page()
    page.on("console", lambda m: errors.append(f"{name}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{name}: {e}"))
    await page.goto(f"{url}/?room={room}&name={name}&token={link}")
    await page.get_by_role("button", name="Join").click()
    await expect(page.get_by_role("status").first).to_have_text(
        f"In room {room} as {name}", timeout=30000
    )
    return page


async def decodes_the_other(page: Page, timeout_s: float = 30.0) -> dict[str, Any]:
    """Until two samples 1.5 s apart show video frames and audio energy rising."""
    async with asyncio.timeout(timeout_s):
        while True:
            first = await page.evaluate(STATS_JS)
            await asyncio.sleep(1.5)
            second = await page.evaluate(STATS_JS)
            v0, v1, a0, a1 = first["video"], second["video"], first["audio"], second["audio"]
            if (
                v1["framesDecoded"] > v0["framesDecoded"] > 0
                and v1["frameWidth"] > 0 and v1["frameHeight"] > 0
                and a1["totalAudioEnergy"] > a0["totalAudioEnergy"] > 0
                and a1["totalSamplesReceived"] > a0["totalSamplesReceived"]
            ):  # fmt: skip
                return {"first": first, "second": second}


async def test_two_people_on_other_machines_see_and_hear_each_other_over_https(
    lan: netns.Lan, system: tuple[str, Up], tmp_path: Path
) -> None:
    url, up = system
    address = lan.ip(0)
    out = up.output()
    assert f"announced      {address} (https, self-signed certificate made now" in out, out
    assert "warning" not in out, out
    assert f"Open {url}/ to join a call" in out, out
    tls_dir = up.data_dir / "tls"
    cert = certificates.load(tls_dir / "cert.pem", tls_dir / "key.pem")
    assert cert.covers(address) and cert.sha256 in out
    # The test's own client checks the certificate, its name included (the address).
    async with httpx.AsyncClient(verify=trust(cert.cert_file), timeout=10) as http:
        assert (await http.get(f"{url}/readyz")).status_code == 200
    room = f"lan-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    async with async_playwright() as pw:
        alice_browser = await chromium_in(pw, lan, 1, cert.spki_sha256, tmp_path)
        bob_browser = await chromium_in(pw, lan, 2, cert.spki_sha256, tmp_path)
        try:
            alice = await join(alice_browser, url, room, "Alice", errors)
            bob = await join(bob_browser, url, room, "Bob", errors)
            for page, other in ((alice, "Bob"), (bob, "Alice")):
                assert await page.evaluate("window.isSecureContext") is True
                ws_url = await page.evaluate("window.mediaplane.ws.url")
                assert ws_url.startswith(f"wss://{address}:{PORT}/ws/rooms/{room}?"), ws_url
                await expect(page.get_by_role("figure", name=other)).to_be_visible(timeout=20000)
                await expect(page.locator("#media-error")).to_be_hidden()
            for page, name in ((alice, "Alice"), (bob, "Bob")):
                got = await decodes_the_other(page)
                log.info("measured: %s decodes the other over the LAN: %s", name, got["second"])
                second = got["second"]
                assert second["remote"], second  # a connected ICE pair ...
                assert all(r.startswith(f"{address}:") for r in second["remote"]), second
                assert second["video"]["frameWidth"] >= 320, second
            # The pin is what makes the certificate trusted: pinned to another key, the
            # same Chromium refuses the page.
            other = base64.b64encode(hashlib.sha256(b"another key").digest()).decode()
            wrong = await chromium_in(pw, lan, 2, other, tmp_path)
            try:
                page = await (await wrong.new_context()).new_page()
                with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
                    await page.goto(f"{url}/")
            finally:
                await wrong.close()
        finally:
            await bob_browser.close()
            await alice_browser.close()
    assert errors == [], errors


async def test_up_warns_when_it_announces_loopback_on_a_network_listener(
    lan: netns.Lan, tmp_path: Path
) -> None:
    """The most reported deployment mistake: listening on 0.0.0.0, announcing nothing."""
    async with up_in(lan, 1, tmp_path, {"MEDIAPLANE_HOST": "0.0.0.0"}) as up:
        out = await until_shown(up, "mediaplane at https://127.0.0.1", 90)
    assert "announced      127.0.0.1 (https" in out, out
    assert (
        "warning: the announced address 127.0.0.1 is loopback while the control plane "
        "listens on 0.0.0.0" in out
    ), out
    assert "MEDIAPLANE_ANNOUNCED_ADDRESS" in out, out
