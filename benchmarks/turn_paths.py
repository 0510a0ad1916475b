"""Join to first decoded video frame over each way through a firewall: direct UDP (the
reference), ICE-TCP, TURN over TCP, TURN over TLS on 443.

The system runs by `mediaplane up` in one network namespace, Chromium (fake camera and
microphone) in another behind tests/support/link.py, as in
tests/integration/test_turn_network.py. Each sample: Alice's page joins and publishes
under the mode's firewall; Bob's page is loaded, then the clock starts at the click on
Join and stops when Bob's page has decoded a video frame of Alice (framesDecoded > 0,
polled every 50 ms). Modes alternate round by round, so load drift hits them alike.
Needs root (namespaces, nft)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright
from tests.integration.test_turn_network import SELECTED_PAIR_JS
from tests.integration.test_web_call import CHROMIUM_ARGS, DECODED_JS
from tests.support import netns
from tests.support.control import participant
from tests.support.link import Link
from tests.support.ns_system import (
    CONTROL_PORT,
    RTC_SERVER_PORT,
    TURN_PORT,
    TURN_TLS_PORT,
    NsSystem,
    system_in_namespace,
)

from benchmarks.common import RESULTS, rewrite_text, start_run, tail, tail_md, write_result
from mediaplane.settings import Settings

SYSTEM, BROWSER = 0, 1
MODES = {  # name: TCP ports the firewall lets through (None: no firewall)
    "udp": None,
    "ice-tcp": {RTC_SERVER_PORT},
    "turn-tcp": {TURN_PORT},
    "turn-tls": {TURN_TLS_PORT},
}


@contextlib.contextmanager
def firewall(link: Link, ports: set[int] | None) -> Iterator[None]:
    if ports is None:
        yield
        return
    with link.allow_only_tcp({*ports, CONTROL_PORT}):
        yield


async def open_page(browser: Browser, system: NsSystem, room: str, name: str) -> Page:
    context = await browser.new_context()
    page = await context.new_page()
    link = participant(Settings(), name.lower(), room)  # a token link: no open join here
    await page.goto(f"{system.http}/?room={room}&name={name}&token={link}")
    return page


async def wait_status(page: Page, text: str, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        status = "document.getElementById('status').textContent"
        while text not in (await page.evaluate(status)):  # noqa: ASYNC110 (the page's state)
            await asyncio.sleep(0.05)


async def one_sample(browser: Browser, system: NsSystem) -> tuple[float, dict[str, Any]]:
    room = f"bench-{uuid.uuid4().hex[:6]}"
    alice = await open_page(browser, system, room, "Alice")
    bob = await open_page(browser, system, room, "Bob")
    try:
        await alice.get_by_role("button", name="Join").click()
        await wait_status(alice, "In room")
        t0 = time.monotonic()
        await bob.get_by_role("button", name="Join").click()
        async with asyncio.timeout(40):
            while (await bob.evaluate(DECODED_JS))["frames"] <= 0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        took = time.monotonic() - t0
        pair = None
        for _ in range(60):  # the selected pair shows in getStats a moment later at times
            pair = await bob.evaluate(SELECTED_PAIR_JS, "recv")
            if pair:
                break
            await asyncio.sleep(0.05)
        return took, pair
    finally:
        for page in (alice, bob):
            await page.context.close()


async def run(rounds: int) -> dict[str, Any]:
    lan = netns.Lan.create(2)
    samples: dict[str, list[float]] = {m: [] for m in MODES}
    paths: dict[str, set[str]] = {m: set() for m in MODES}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with system_in_namespace(lan, SYSTEM, Path(tmp)) as system:
                wrapper = Path(tmp) / "chromium-in-netns"
                wrapper.write_text(
                    f"#!/bin/sh\nexec ip netns exec {lan.namespaces[BROWSER]} "
                    '/usr/bin/chromium "$@"\n'
                )
                wrapper.chmod(0o755)
                # https pages and TURN/TLS present the certificate `up` made: pin its key
                args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={system.spki}"]
                link = Link(lan, BROWSER)
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(
                        executable_path=str(wrapper), headless=True, args=args
                    )
                    try:
                        await one_sample(browser, system)  # warm-up, not counted
                        for r in range(rounds):
                            for mode, ports in MODES.items():
                                with firewall(link, ports):
                                    took, pair = await one_sample(browser, system)
                                samples[mode].append(took)
                                local = pair["local"] if pair else {}
                                paths[mode].add(
                                    f"{local.get('type')}/{local.get('protocol')}"
                                    f"/{local.get('relayProtocol')}"
                                )
                                print(f"round {r} {mode}: {took:.3f} s {pair and pair['local']}",
                                      file=sys.stderr)  # fmt: skip
                    finally:
                        await browser.close()
    finally:
        lan.close()
    return {"samples_s": samples, "paths": {m: sorted(p) for m, p in paths.items()}}


LABELS = {
    "udp": "direct UDP (reference)",
    "ice-tcp": "ICE-TCP (only TCP to the SFU's port)",
    "turn-tcp": "TURN over TCP (only TCP 3478)",
    "turn-tls": "TURN over TLS (only TCP 443)",
}


def render(data: dict[str, Any]) -> tuple[str, str]:
    """(table, headline) from the measured data; ratios of p50s taken the same way."""
    ref = tail(data["samples_s"]["udp"])["p50"]
    table = (
        "| path (Bob's selected local candidate) | p50 (ms) | tail (ms) | x direct UDP (p50) "
        "| n |\n| --- | ---: | ---: | ---: | ---: |\n"
    )
    summary: dict[str, Any] = {}
    for mode, values in data["samples_s"].items():
        t = tail(values)
        summary[mode] = {**t, "ratio_p50": t["p50"] / ref}
        table += (
            f"| {LABELS[mode]}: {', '.join(data['paths'][mode])} | {t['p50'] * 1000:.0f} "
            f"| {tail_md(t, '.0f', 1000)} | x{t['p50'] / ref:.2f} | {t['n']} |\n"
        )
    table += (
        "\nJoin to first frame = Bob's click on Join to his page's first decoded video frame "
        "of Alice (getStats framesDecoded, polled every 50 ms), with Alice in the room "
        "already; both pages behind the same firewall (nft in Chromium's namespace, the "
        "control-plane port open). Rounds alternate the modes; one warm-up sample first. "
        "Tails are the max of n (fewer than 100 samples). All on one machine: the TURN and "
        "TCP paths add their handshakes (TCP, TLS, TURN Allocate) but no network distance."
    )
    data["summary"] = summary
    headline = ", ".join(
        f"{m} x{summary[m]['ratio_p50']:.2f}" for m in ("ice-tcp", "turn-tcp", "turn-tls")
    )
    return table, f"join to first frame vs direct UDP (p50): {headline}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--render", action="store_true", help="re-render the stored result")
    opts = parser.parse_args()
    if opts.render:
        stored = json.loads((RESULTS / "turn_paths.json").read_text())
        rewrite_text("turn_paths", *render(stored["data"]))
        return
    # the system is on a namespace address: secrets of this run, never the repository's
    for name in ("SFU", "API", "MEDIA", "WEBHOOK", "TURN"):
        os.environ.setdefault(f"MEDIAPLANE_{name}_SECRET", f"bench-{secrets.token_urlsafe(24)}")
    stamp = start_run()
    data = asyncio.run(run(opts.rounds))
    table, headline = render(data)
    write_result(
        "turn_paths",
        "Join to first frame through firewalls: UDP, ICE-TCP, TURN/TCP, TURN/TLS",
        data,
        table,
        stamp,
        headline,
    )
    print(table)


if __name__ == "__main__":
    main()
