"""Chromium inside a network namespace (tests/support/netns.py), trusting the system's
certificate by its SPKI pin only, and the call page joined from it (as
tests/integration/test_reach_lan.py does, with extra flags and a device scale)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, Playwright, expect

from mediaplane import certificates
from mediaplane.settings import Settings
from tests.integration.test_reach_lan import until_shown, up_in
from tests.support.chromium import CHROMIUM_ARGS
from tests.support.control import participant
from tests.support.netns import Lan


@asynccontextmanager
async def https_system(lan: Lan, index: int, tmp: Path) -> AsyncIterator[tuple[str, str]]:
    """`mediaplane up` in namespace `index` on its address (https by default there): its
    URL and the SPKI pin of the certificate it made."""
    address = lan.ip(index)
    extra = {"MEDIAPLANE_HOST": "0.0.0.0", "MEDIAPLANE_ANNOUNCED_ADDRESS": address,
             "MEDIAPLANE_RTC_LISTEN_IP": address}  # fmt: skip
    async with up_in(lan, index, tmp, extra) as up:
        url = f"https://{address}:8080"
        await until_shown(up, f"mediaplane at {url}", 90)
        tls = up.data_dir / "tls"
        yield url, certificates.load(tls / "cert.pem", tls / "key.pem").spki_sha256


async def chromium_in(
    pw: Playwright, lan: Lan, index: int, spki: str, tmp: Path, extra: list[str] | None = None
) -> Browser:
    """A headless Chromium in namespace `index`; `extra` flags replace those of the same name."""
    wrapper = tmp / f"chromium-in-netns-{index}"
    wrapper.write_text(
        f'#!/bin/sh\nexec ip netns exec {lan.namespaces[index]} /usr/bin/chromium "$@"\n'
    )
    wrapper.chmod(0o755)
    added = extra or []
    names = {a.split("=")[0] for a in added}
    args = [a for a in CHROMIUM_ARGS if a.split("=")[0] not in names]
    args += [*added, f"--ignore-certificate-errors-spki-list={spki}"]
    return await pw.chromium.launch(executable_path=str(wrapper), headless=True, args=args)


async def join(
    browser: Browser,
    url: str,
    room: str,
    name: str,
    errors: list[str],
    *,
    viewer: bool = False,
    height: int = 700,
    query: str = "",
    init_script: str = "",
) -> Page:
    """The call page in a 1000 px wide viewport, joined by a token link (open join is
    refused off loopback, docs/security.md), as a viewer: sending nothing. `init_script`
    runs in the page before its own scripts."""
    link = participant(Settings(env="test"), name, room)  # the suite's secrets, as up's
    context = await browser.new_context(viewport={"width": 1000, "height": height})
    if init_script:
        await context.add_init_script(init_script)
    page = await context.new_page()
    page.on("console", lambda m: errors.append(f"{name}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{name}: {e}"))
    await page.goto(
        f"{url}/?room={room}&name={name}&token={link}{'&viewer=1' if viewer else ''}{query}"
    )
    await page.get_by_role("button", name="Join").click()
    await expect(page.get_by_role("status").first).to_have_text(
        f"In room {room} as {name}{' (viewer)' if viewer else ''}", timeout=30000
    )
    return page
