"""Waiting on a page's state under its Content-Security-Policy.

Playwright's `wait_for_function` compiles its predicate in the page with `new Function`,
which our pages' CSP (`script-src 'self'`, no 'unsafe-eval') refuses, as it should. This
polls `page.evaluate` (run by the browser's debugger protocol, outside the page's CSP).
"""

from __future__ import annotations

import asyncio
import time

from playwright.async_api import Page


async def wait_until(page: Page, expression: str, timeout_ms: float) -> None:
    """Until the JavaScript `expression` is truthy in the page (AssertionError after)."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        if await page.evaluate(f"() => Boolean({expression})"):
            return
        if time.monotonic() > deadline:
            told = await page.evaluate("() => window.mediaplane?.statusLog ?? null")
            raise AssertionError(
                f"not true within {timeout_ms / 1000:.1f} s: {expression} (status log: {told})"
            )
        await asyncio.sleep(0.1)
