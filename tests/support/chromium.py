"""Debian's Chromium for browser tests: headless, fake camera and microphone."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from playwright.async_api import Browser, async_playwright

CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox",
    "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
]  # fmt: skip


@contextlib.asynccontextmanager
async def chromium(args: Sequence[str] = tuple(CHROMIUM_ARGS)) -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, with `args` (fake devices), closed on leaving."""
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=list(args)
        )
        try:
            yield b
        finally:
            await b.close()
