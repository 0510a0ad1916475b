"""A participant's network goes away for 22 s (every packet dropped by nft in the
namespace its Chromium runs in): the others are told it left, the REST list drops it,
and once the network is back its page rejoins by itself and media flows again. The
control plane is on the bridge's address, so over https (a certificate made for that
address, pinned by Chromium), as `up` serves a network address: without
control/ws_keepalive.py the TLS shutdown kept the vanished socket 36.4 s (measured).

Bounds (docs/web.md, docs/signaling.md): gone (REST list and the other page's
peerLeft) within OUTAGE_GONE_S of the loss (keep-alive: ws_ping_interval_s +
ws_ping_timeout_s = 10 s, plus a ping's phase); back in the room with its media
decoded by the other page within BACK_S after the network returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from mediaplane import certificates
from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.integration.test_web_call import CHROMIUM_ARGS, decoded_over, open_call
from tests.support import netns
from tests.support.control import ControlInstance, admin, participant
from tests.support.link import Link
from tests.support.pages import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(netns.available() is not None, reason=str(netns.available())),
]
log = logging.getLogger(__name__)

OUTAGE_S = 22.0
OUTAGE_GONE_S = 20.0
BACK_S = 35.0


@pytest.fixture
async def lan() -> AsyncIterator[netns.Lan]:
    lan = netns.Lan.create(1)
    try:
        yield lan
    finally:
        lan.close()


@pytest.fixture
async def bridged(
    lan: netns.Lan, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[Settings, ControlInstance]]:
    """An SFU and a control plane of the test's own, on the bridge's address: https
    with a self-signed certificate for it, as `up` serves off loopback."""
    settings = Settings(env="test", rtc_listen_ip=lan.host_ip)
    cert, _ = certificates.self_signed(tmp_path / "tls", [lan.host_ip])
    sfu = await SfuProcess.start(settings, port=0, num_workers=1)
    try:
        control = await ControlInstance.start(
            settings, sfu_url=sfu.url, redis_url=redis_server.url, host=lan.host_ip,
            certificate=cert,
        )  # fmt: skip
        try:
            yield settings, control
        finally:
            await control.stop()
    finally:
        await sfu.stop()


@pytest.fixture
async def browsers(
    lan: netns.Lan, bridged: tuple[Settings, ControlInstance], tmp_path: Path
) -> AsyncIterator[tuple[Browser, Browser]]:
    """(a Chromium inside the namespace: its packets leave through the veth only,
    a Chromium in the test's namespace)."""
    wrapper = tmp_path / "chromium-in-netns"
    ns = lan.namespaces[0]
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} /usr/bin/chromium "$@"\n')
    wrapper.chmod(0o755)
    _, control = bridged
    # https on the bridge's address: trust exactly that certificate's key (a secure
    # context, so getUserMedia works; any other certificate is still refused)
    assert control.certificate is not None
    pin = control.certificate.spki_sha256
    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pin}"]
    async with async_playwright() as pw:
        inside = await pw.chromium.launch(executable_path=str(wrapper), headless=True, args=args)
        try:
            outside = await pw.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=args
            )
            try:
                yield inside, outside
            finally:
                await outside.close()
        finally:
            await inside.close()


async def participants(settings: Settings, control: ControlInstance, room: str) -> list[str]:
    async with httpx.AsyncClient(base_url=control.http, verify=control.verify, timeout=5) as http:
        r = await http.get(
            f"/api/rooms/{room}/participants",
            headers={"authorization": f"Bearer {admin(settings)}"},
        )
        r.raise_for_status()
        return [p["identity"] for p in r.json()]


async def test_a_participant_cut_off_for_20_s_is_gone_then_back(
    browsers: tuple[Browser, Browser],
    lan: netns.Lan,
    bridged: tuple[Settings, ControlInstance],
) -> None:
    settings, control = bridged
    inside, outside = browsers
    room = f"out-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []
    # Token links: open join is refused on a network address (docs/security.md).
    alice_token, bob_token = (participant(settings, n, room) for n in ("alice", "bob"))
    alice = await open_call(inside, control, room, "Alice", errors, alice_token)
    bob = await open_call(outside, control, room, "Bob", errors, bob_token)
    await expect(bob.get_by_role("figure", name="Alice")).to_be_visible(timeout=15000)
    await wait_decoding(bob, 20.0)
    alice_identity = await alice_identity_of(settings, control, room)
    await bob.evaluate(
        "window.__left = []; const ws = window.mediaplane.ws; ws.addEventListener('message', "
        "(m) => { const d = JSON.parse(m.data); if (d.event === 'peerLeft') "
        "window.__left.push(performance.now()); });"
    )
    with Link(lan, 0).outage():
        cut = time.monotonic()
        gone_at: float | None = None
        while time.monotonic() - cut < OUTAGE_S:
            if gone_at is None:
                listed = await participants(settings, control, room)
                told = await bob.evaluate("window.__left.length")
                tile = await bob.get_by_role("figure", name="Alice").count()
                if alice_identity not in listed and told > 0 and tile == 0:
                    gone_at = time.monotonic() - cut
                    log.info("measured: alice gone (REST list, bob's peerLeft) %.1f s in", gone_at)
            await asyncio.sleep(0.5)
        assert gone_at is not None and gone_at <= OUTAGE_GONE_S, (
            f"alice still listed or not announced gone {OUTAGE_S:g} s into the outage: "
            f"listed {listed}, peerLeft {told}, tile {tile}"
        )
    back = time.monotonic()
    await wait_until(
        alice, "window.mediaplane.statusLog.at(-1).startsWith('In room')", timeout_ms=BACK_S * 1000
    )
    await expect(bob.get_by_role("figure", name="Alice")).to_be_visible(
        timeout=max(1000, int((BACK_S - (time.monotonic() - back)) * 1000))
    )
    decoded = await wait_decoding(bob, max(5.0, BACK_S - (time.monotonic() - back)))
    log.info(
        "measured: alice back and decoded by bob %.1f s after the network returned: %s "
        "(alice's status log %s, %d sockets)",
        time.monotonic() - back,
        decoded,
        await alice.evaluate("window.mediaplane.statusLog"),
        await alice.evaluate("window.mediaplane.link.sockets"),
    )
    assert alice_identity in await participants(settings, control, room)
    # Failed WebSocket attempts and media errors during the outage are the outage itself.
    assert [e for e in errors if "WebSocket" not in e and "ICE" not in e] == [], errors


async def alice_identity_of(settings: Settings, control: ControlInstance, room: str) -> str:
    ids = await participants(settings, control, room)
    assert len(ids) == 2, ids
    alice = [i for i in ids if i.lower().startswith("alice")]
    assert alice, ids
    return alice[0]


async def wait_decoding(page: Page, timeout_s: float) -> dict[str, Any]:
    """Until `page` decodes video frames and audio energy from the others."""
    async with asyncio.timeout(timeout_s):
        while True:
            got = await decoded_over(page, 1.5)
            if got["frames"] > 0 and got["audioEnergy"] > 0:
                return got
