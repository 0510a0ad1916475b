"""Resume vs rejoin: how soon a participant is seen again after an outage, next to a
fresh join, in the same run.

Alice's Chromium runs in a network namespace on a bridge (tests/support/netns.py), Bob's
in the test's namespace; the SFU and the control plane listen on the bridge address.
- restore to first decoded frame: every packet of Alice's namespace is dropped (nft) for
  OUTAGE_S, long enough for her page to find its socket dead; then the network returns
  and the clock runs until Bob's page decodes a new video frame of hers (getStats
  framesDecoded, polled every 20 ms). Her page resumes the session (same peer id: checked
  every round, a round that rejoined instead counts as a failure).
- fresh join to first frame: Alice's page (loaded, form filled) clicks Join; the clock
  runs until Bob's page decodes her first video frame (same poll). Her page is closed
  between joins.
Resume must be faster than a rejoin: the ratio is resume p50 / join p50.

Run: `.venv/bin/python -m benchmarks.resume_restore` (root: it makes namespaces).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright
from tests.integration.test_web_call import CHROMIUM_ARGS, open_call
from tests.integration.test_web_outage import all_packets_dropped, frames_from
from tests.support import netns
from tests.support.control import ControlInstance, participant

from benchmarks.common import start_run, tail, tail_md, write_result
from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer

OUTAGES = 20
JOINS = 10
REJOINS = 10
OUTAGE_S = 3.0
POLL_S = 0.02
GRACE_S = 60.0


async def first_frame_after(bob: Page, peer_id: str, above: int, timeout_s: float) -> float:
    """Seconds until Bob has decoded more than `above` frames of `peer_id`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if await frames_from(bob, peer_id) > above:
            return time.monotonic() - t0
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"no frame of {peer_id} within {timeout_s} s")


async def fresh_join(inside: Browser, control: ControlInstance, room: str, token: str,
                     bob: Page) -> float:  # fmt: skip
    context = await inside.new_context(viewport={"width": 800, "height": 600})
    try:
        page = await context.new_page()
        await page.goto(f"{control.http}/?room={room}&name=Alice&token={token}")
        join = page.get_by_role("button", name="Join")
        await join.wait_for()
        t0 = time.monotonic()
        await join.click()
        peer_id = None
        while not peer_id:
            peer_id = await page.evaluate("window.mediaplane?.peerId ?? null")
            await asyncio.sleep(POLL_S)
        await first_frame_after(bob, peer_id, 0, 30.0)
        return time.monotonic() - t0
    finally:
        await context.close()


async def run() -> dict[str, Any]:
    # Secrets of this run (dev constants are refused on the bridge address), inherited by
    # the SFU process; as tests/conftest.py does.
    for name in ("SFU_SECRET", "API_SECRET", "MEDIA_SECRET", "WEBHOOK_SECRET"):
        os.environ.setdefault(f"MEDIAPLANE_{name}", f"bench-{secrets.token_urlsafe(24)}")
    lan = netns.Lan.create(1)
    tmp = Path(tempfile.mkdtemp(prefix="mp-resume-bench-"))
    redis = await RedisServer.start(tmp / "redis", persist=False)
    settings = Settings(env="test", rtc_listen_ip=lan.host_ip, resume_grace_s=GRACE_S)
    sfu = await SfuProcess.start(settings, port=0, num_workers=1)
    control = await ControlInstance.start(
        settings, sfu_url=sfu.url, redis_url=redis.url, host=lan.host_ip
    )
    wrapper = tmp / "chromium-in-netns"
    ns = lan.namespaces[0]
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} /usr/bin/chromium "$@"\n')
    wrapper.chmod(0o755)
    args = [*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={control.http}"]
    room = f"bench-{uuid.uuid4().hex[:6]}"
    alice_token, bob_token = (participant(settings, n, room) for n in ("alice", "bob"))
    restores: list[float] = []
    joins: list[float] = []
    resumed: list[float] = []
    rejoins: list[float] = []
    rejoined = 0
    errors: list[str] = []
    try:
        async with async_playwright() as pw:
            inside = await pw.chromium.launch(
                executable_path=str(wrapper), headless=True, args=args
            )
            outside = await pw.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=args
            )
            bob = await open_call(outside, control, room, "Bob", errors, bob_token)
            for _ in range(JOINS):
                joins.append(await fresh_join(inside, control, room, alice_token, bob))
                await asyncio.sleep(1.0)
            alice = await open_call(inside, control, room, "Alice", errors, alice_token)
            alice_id = await alice.evaluate("window.mediaplane.peerId")
            await first_frame_after(bob, alice_id, 0, 30.0)
            for _ in range(OUTAGES):
                with all_packets_dropped(lan.namespaces[0]):
                    await asyncio.sleep(OUTAGE_S)
                    frozen = await frames_from(bob, alice_id)
                restored_at = await alice.evaluate("performance.now()")
                restores.append(await first_frame_after(bob, alice_id, frozen, 30.0))
                # When her page had its session back (the resume reply), from the restore.
                told = await alice.evaluate(
                    "[window.mediaplane.statusLog, window.mediaplane.statusTimes]"
                )
                back = [t for s, t in zip(*told, strict=True)
                        if s.startswith("Reconnected") and t >= restored_at]  # fmt: skip
                if back:
                    resumed.append((back[0] - restored_at) / 1000)
                if await alice.evaluate("window.mediaplane.peerId") != alice_id:
                    rejoined += 1
                    alice_id = await alice.evaluate("window.mediaplane.peerId")
                await asyncio.sleep(2.0)
            # The same outage, the page without its resume token: it rejoins (a new peer).
            for _ in range(REJOINS):
                await alice.evaluate("window.mediaplane.resumeToken = null")
                with all_packets_dropped(lan.namespaces[0]):
                    await asyncio.sleep(OUTAGE_S)
                t0 = time.monotonic()
                while (new_id := await alice.evaluate("window.mediaplane.peerId")) == alice_id:  # noqa: ASYNC110
                    await asyncio.sleep(POLL_S)
                await first_frame_after(bob, new_id, 0, 30.0)
                rejoins.append(time.monotonic() - t0)
                alice_id = new_id
                await asyncio.sleep(2.0)
            resumes = await alice.evaluate("window.mediaplane.resumes")
            ice_restarts = await alice.evaluate("window.mediaplane.iceRestarts")
            await inside.close()
            await outside.close()
    finally:
        await control.stop()
        await sfu.stop()
        await redis.stop()
        lan.close()
    return {
        "restore_s": restores, "join_s": joins, "resumed_s": resumed, "rejoined": rejoined,
        "rejoin_after_outage_s": rejoins,
        "resumes": resumes,
        "ice_restarts": ice_restarts, "outage_s": OUTAGE_S,
    }  # fmt: skip


def main() -> None:
    stamp = start_run()
    r = asyncio.run(run())
    rest, join = tail(r["restore_s"]), tail(r["join_s"])
    ratio = rest["p50"] / join["p50"]
    rejoin = tail(r["rejoin_after_outage_s"])
    ratio_rejoin = rest["p50"] / rejoin["p50"]
    resumed = tail(r["resumed_s"]) if r["resumed_s"] else None
    resumed_row = (
        f"| restore to the session back (the page's resume reply) "
        f"| {resumed['p50'] * 1000:.0f} | {tail_md(resumed, '.0f', 1000)} | {resumed['n']} |\n"
        if resumed
        else ""
    )
    table = (
        "| measure | p50 (ms) | tail (ms) | n |\n| --- | ---: | ---: | ---: |\n"
        f"| restore to first decoded frame (resume, {r['outage_s']:g} s outage) "
        f"| {rest['p50'] * 1000:.0f} | {tail_md(rest, '.0f', 1000)} | {rest['n']} |\n"
        f"{resumed_row}"
        f"| fresh join to first decoded frame (reference) "
        f"| {join['p50'] * 1000:.0f} | {tail_md(join, '.0f', 1000)} | {join['n']} |\n"
        f"| restore to first decoded frame, the page rejoining instead (no resume token) "
        f"| {rejoin['p50'] * 1000:.0f} | {tail_md(rejoin, '.0f', 1000)} | {rejoin['n']} |\n\n"
        f"Ratio resume / fresh join (p50): **x{ratio:.2f}**; resume / rejoin after the same "
        f"outage (p50): **x{ratio_rejoin:.2f}**. Rounds that rejoined instead of "
        f"resuming: {r['rejoined']} of {rest['n']} (the page counted {r['resumes']} resumes "
        f"and {r['ice_restarts']} ICE restarts). Restore to first frame = the nft rule "
        f"dropping every packet of Alice's namespace removed to Bob's page decoding a new "
        f"video frame of hers (getStats framesDecoded polled every 20 ms); fresh join = "
        f"Alice's click on Join to Bob's first decoded frame of her, Bob in the room. "
        f"Both Chromium, the control plane and the SFU on one bridge (tests/support/netns.py)."
    )
    headline = (
        f"resume {rest['p50'] * 1000:.0f} ms p50 / {tail_md(rest, '.0f', 1000)} ms vs join "
        f"{join['p50'] * 1000:.0f} ms: x{ratio:.2f}; vs a rejoin after the same outage "
        f"{rejoin['p50'] * 1000:.0f} ms: x{ratio_rejoin:.2f}"
    )
    write_result("resume_restore", "Resume: restore to first frame vs a fresh join",
                 r, table, stamp, headline)  # fmt: skip
    print(table)


if __name__ == "__main__":
    main()
