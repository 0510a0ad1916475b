"""Reaching the system from networks that block UDP or let only TCP 443 out.

The whole system (`mediaplane up`: control plane, SFU announcing its namespace address,
coturn, redis, media manager) runs in one namespace; Chromium runs in another, behind a
Link (tests/support/link.py) that drops what a strict firewall drops. Two pages in that
Chromium call each other, so both directions cross the firewall; the test reads the
selected ICE candidate pair of each transport from getStats and the decoded media.

- UDP blocked: media over ICE-TCP to the SFU worker's TCP port (host/tcp both sides);
- only TCP to the TURN port: relayed by TURN over TCP (relay, relayProtocol tcp);
- only TCP 443 (TURN's TLS port): relayed by TURN over TLS (relay, relayProtocol tls).
The control-plane port stays open in each (the signaling). Each asserts the Link dropped
packets (the browser did try the blocked ways).

The page's origin is https://<namespace address>:8080 (TLS by the auto default, the
certificate `up` made for the announced address), a secure context: Chromium trusts
that certificate by its key alone (--ignore-certificate-errors-spki-list, any other is
still refused). coturn's TLS listener presents the same certificate, so the same pin
covers TURN/TLS.

Then coturn itself, asked directly (tests/support/turn_client.py): an expired or wrong
credential is refused (401), a join's credentials are fresh and later each time, and
relays to loopback or private addresses are refused (403) but to the SFU's address not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from playwright.async_api import Browser, Page, async_playwright

from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from mediaplane.turn.credentials import mint
from tests.integration.test_web_call import CHROMIUM_ARGS, decoded_over, open_call
from tests.support import netns
from tests.support.control import admin, participant
from tests.support.link import Hits, Link
from tests.support.ns_system import (
    CONTROL_PORT,
    RTC_SERVER_PORT,
    TURN_PORT,
    TURN_TLS_PORT,
    NsSystem,
    system_in_namespace,
)
from tests.support.turn_client import TurnUdpClient

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(netns.available() is not None, reason=str(netns.available())),
]
log = logging.getLogger(__name__)
SYSTEM, BROWSER = 0, 1

SELECTED_PAIR_JS = """async (which) => {
  const t = which === 'send' ? window.mediaplane.send : window.mediaplane.recv;
  const byId = new Map();
  (await t.getStats()).forEach((s) => byId.set(s.id, s));
  let pair = null;
  for (const s of byId.values()) {
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      pair = byId.get(s.selectedCandidatePairId);
    }
  }
  if (!pair || pair.state !== 'succeeded') return null;
  const l = byId.get(pair.localCandidateId), r = byId.get(pair.remoteCandidateId);
  return {
    local: { type: l.candidateType, protocol: l.protocol, relayProtocol: l.relayProtocol ?? null,
             url: l.url ?? null },
    remote: { type: r.candidateType, protocol: r.protocol, address: r.address, port: r.port },
    bytesSent: pair.bytesSent, bytesReceived: pair.bytesReceived,
  };
}"""

FRAME_JS = """() => {
  const v = [...document.querySelectorAll('#tiles video')].find((e) => e.videoWidth > 0);
  return v ? [v.videoWidth, v.videoHeight] : null;
}"""


@pytest.fixture(scope="module")
async def lan() -> AsyncIterator[netns.Lan]:
    lan = netns.Lan.create(2)
    try:
        yield lan
    finally:
        lan.close()


@pytest.fixture(scope="module")
async def system(
    lan: netns.Lan, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[NsSystem]:
    async with system_in_namespace(lan, SYSTEM, tmp_path_factory.mktemp("turnsys")) as s:
        yield s
    log.info("mediaplane up said:\n%s", s.output()[-3000:])


@pytest.fixture(scope="module")
async def chromium(
    lan: netns.Lan, system: NsSystem, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Browser]:
    """Chromium inside the browser's namespace (its packets leave through its Link)."""
    wrapper = tmp_path_factory.mktemp("chromium") / "chromium-in-netns"
    ns = lan.namespaces[BROWSER]
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} /usr/bin/chromium "$@"\n')
    wrapper.chmod(0o755)
    # The self-signed certificate of the pages and of TURN/TLS (Chromium verifies both:
    # without the pin the page is refused and the TURN/TLS case never connects): trust
    # exactly that key, as a browser trusts a CA-signed one in production.
    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={system.spki}"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(wrapper), headless=True, args=args)
        try:
            yield browser
        finally:
            await browser.close()


async def selected_pair(page: Page, which: str, timeout_s: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            pair: dict[str, Any] | None = await page.evaluate(SELECTED_PAIR_JS, which)
            if pair is not None and pair["bytesReceived"] > 0:
                return pair
            await asyncio.sleep(0.25)


async def media_decoded(page: Page, timeout_s: float = 30.0) -> dict[str, Any]:
    """Until `page` decodes rising video frames of a real size and rising audio energy."""
    async with asyncio.timeout(timeout_s):
        while True:
            got = await decoded_over(page, 1.5)
            size = await page.evaluate(FRAME_JS)
            if got["frames"] > 0 and got["audioEnergy"] > 0 and size:
                return {**got, "size": size}


Firewall = dict[str, Any]
# A selected pair's shape: (local types, local protocol, local relayProtocol, remote type,
# remote protocol). Chromium's ICE-TCP candidates are "active" (port 9): the socket it
# opens to the SFU is learnt as peer-reflexive, so host or prflx, never a relay.
ICE_TCP = ({"host", "prflx"}, "tcp", None, "host", "tcp")
TURN_TCP = ({"relay"}, "udp", "tcp", "host", "udp")
TURN_TLS = ({"relay"}, "udp", "tls", "host", "udp")
CASES: dict[str, Firewall] = {
    # UDP blocked, all TCP open: ICE-TCP or a TURN relay over TCP/TLS, never UDP (Chromium
    # nominated the TURN/TCP relay in 1 of 2 runs: ICE-TCP first is not guaranteed)
    "udp-blocked": {"block": "udp", "shapes": [ICE_TCP, TURN_TCP, TURN_TLS]},
    # UDP blocked and TURN out of reach: only TCP to the SFU worker's port
    "ice-tcp": {"only": {RTC_SERVER_PORT}, "shapes": [ICE_TCP]},
    # only TCP to the TURN port: TURN over TCP
    "turn-tcp": {"only": {TURN_PORT}, "shapes": [TURN_TCP]},
    # only TCP 443, TURN's TLS port: TURN over TLS
    "turn-tls-443": {"only": {TURN_TLS_PORT}, "shapes": [TURN_TLS]},
}


def shape_of(pair: dict[str, Any]) -> tuple[str, str, str | None, str, str]:
    local, remote = pair["local"], pair["remote"]
    relay = local["relayProtocol"] if local["type"] == "relay" else None
    return (local["type"], local["protocol"], relay, remote["type"], remote["protocol"])


def matches(pair: dict[str, Any], shapes: list[Any]) -> bool:
    ltype, lproto, relay, rtype, rproto = shape_of(pair)
    return any(
        ltype in types and (lproto, relay, rtype, rproto) == rest
        for types, *rest_list in shapes
        for rest in [tuple(rest_list)]
    )


def firewall(link: Link, case: Firewall) -> AbstractContextManager[Hits]:
    if case.get("block") == "udp":
        return link.block_udp()
    return link.allow_only_tcp({*case["only"], CONTROL_PORT})


@pytest.mark.parametrize("name", list(CASES))
async def test_a_call_through_a_strict_firewall(
    name: str, chromium: Browser, lan: netns.Lan, system: NsSystem
) -> None:
    case = CASES[name]
    room = f"fw-{name}-{uuid.uuid4().hex[:4]}"
    errors: list[str] = []
    pages: list[Page] = []
    with firewall(Link(lan, BROWSER), case) as hits:
        try:
            t0 = time.monotonic()
            alice = await open_call(chromium, system, room, "Alice", errors)  # type: ignore[arg-type]
            pages.append(alice)
            bob = await open_call(chromium, system, room, "Bob", errors)  # type: ignore[arg-type]
            pages.append(bob)
            decoded = {p: await media_decoded(p) for p in (alice, bob)}
            took = time.monotonic() - t0
            pairs = {
                (who, which): await selected_pair(page, which)
                for who, page in (("alice", alice), ("bob", bob))
                for which in ("send", "recv")
            }
        finally:
            for page in pages:
                await page.context.close()
    log.info("measured: %s both decoding %.1f s after the first page opened; pairs %s; "
             "decoded %s; firewall dropped %d packets", name, took, pairs,
             list(decoded.values()), hits.packets)  # fmt: skip
    for where, pair in pairs.items():
        assert matches(pair, case["shapes"]), (where, pair)
        remote = pair["remote"]
        assert remote["address"] == system.ip and remote["port"] == RTC_SERVER_PORT, pair
        relay = shape_of(pair)[2]
        if relay is not None:
            port = TURN_TLS_PORT if relay == "tls" else TURN_PORT
            assert f":{port}?" in (pair["local"]["url"] or ""), (where, pair)
    for got in decoded.values():
        width, height = got["size"]
        assert width >= 160 and height >= 120, got
    assert hits.packets > 0, "the firewall never dropped a packet: it was not in the way"
    assert [e for e in errors if "ICE" not in e] == [], errors


async def join(system: NsSystem, room: str, identity: str) -> dict[str, Any]:
    token = participant(Settings(), identity, room)
    sig = await SignalingClient.connect(system.ws(room), token, ssl=system.ssl)
    try:
        return await sig.request("join")
    finally:
        await sig.close()


def turn_of(servers: list[dict[str, Any]]) -> tuple[str, str]:
    [server] = servers
    return server["username"], server["credential"]


async def test_credentials_are_fresh_per_join_and_refused_once_expired(
    system: NsSystem,
) -> None:
    room = f"cred-{uuid.uuid4().hex[:6]}"
    first = turn_of((await join(system, room, "carol"))["iceServers"])
    await asyncio.sleep(1.1)
    second = turn_of((await join(system, room, "carol"))["iceServers"])
    expiry = [int(u.split(":", 1)[0]) for u, _ in (first, second)]
    assert second != first and expiry[1] > expiry[0], (first, second)
    ttl = Settings().turn_credential_ttl_s
    assert expiry[1] - ttl <= time.time() + 1 <= expiry[1] - ttl + 30  # minted just now
    # what the join handed out is the REST-API pair of the system's secret
    secret = Settings().secret("turn_secret")
    assert mint(secret, "carol", ttl, now=expiry[1] - ttl) == second
    server = (system.ip, TURN_PORT)
    fresh = TurnUdpClient(server, *second)
    expired = TurnUdpClient(server, *mint(secret, "carol", ttl, now=time.time() - ttl - 5))
    try:
        refused = await expired.allocate()
        assert not refused.ok and refused.code == 401, refused
        ok = await fresh.allocate()
        assert ok.ok, ok
        assert ok.attributes["XOR-RELAYED-ADDRESS"][0] == system.ip  # type: ignore[index]
    finally:
        fresh.close()
        expired.close()


async def test_coturn_refuses_bad_credentials_and_private_peers_but_relays_to_the_sfu(
    system: NsSystem, lan: netns.Lan
) -> None:
    room = f"deny-{uuid.uuid4().hex[:6]}"
    username, credential = turn_of((await join(system, room, "dave"))["iceServers"])
    server = (system.ip, TURN_PORT)
    wrong = TurnUdpClient(server, username, "AAAA" + credential[4:])
    forged = TurnUdpClient(server, username.replace("dave", "admin"), credential)
    anonymous = TurnUdpClient(server, "", "")
    good = TurnUdpClient(server, username, credential)
    try:
        for client in (wrong, forged):
            r = await client.allocate()
            assert not r.ok and r.code == 401, r
        r = await anonymous.allocate()
        assert not r.ok and r.code == 401, r
        assert (await good.allocate()).ok
        refused = {}
        for peer in ("127.0.0.1", "10.1.2.3", lan.host_ip, "192.168.1.1", "172.16.0.1",
                     "169.254.1.1"):  # fmt: skip
            r = await good.create_permission(peer)
            refused[peer] = r.code
        assert set(refused.values()) == {403}, refused
        sfu = await good.create_permission(system.ip, RTC_SERVER_PORT)
        assert sfu.ok, sfu
        # a normal participant is served after all that: a new join's credentials work
        again = TurnUdpClient(server, *turn_of((await join(system, room, "erin"))["iceServers"]))
        try:
            assert (await again.allocate()).ok
        finally:
            again.close()
    finally:
        for c in (wrong, forged, anonymous, good):
            c.close()


async def test_whip_answers_carry_turn_servers_as_link_headers(system: NsSystem) -> None:
    room = f"whip-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(verify=system.ssl, timeout=15) as http:
        r = await http.post(f"{system.http}/api/rooms", json={"name": room},
                            headers={"Authorization": f"Bearer {admin(Settings())}"})  # fmt: skip
        assert r.status_code == 201, r.text
    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())
    try:
        await pc.setLocalDescription(await pc.createOffer())
        token = participant(Settings(), "wendy", room, can_publish=True)
        async with httpx.AsyncClient(verify=system.ssl, timeout=15) as http:
            r = await http.post(
                f"{system.http}/whip/rooms/{room}", content=pc.localDescription.sdp,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"},
            )  # fmt: skip
            assert r.status_code == 201, r.text
            links = r.headers.get_list("link")
            with contextlib.suppress(Exception):
                await http.delete(
                    f"{system.http}{r.headers['location']}",
                    headers={"Authorization": f"Bearer {token}"},
                )
    finally:
        await pc.close()
    pattern = re.compile(
        r'^<(turns?:[^>]+)>; rel="ice-server"; username="([^"]+)"; credential="([^"]+)"; '
        r'credential-type="password"$'
    )
    parsed = [pattern.match(v) for v in links]
    assert len(parsed) == 3 and all(parsed), links
    urls = [m.group(1) for m in parsed if m]
    assert urls == [
        f"turn:{system.ip}:{TURN_PORT}?transport=udp",
        f"turn:{system.ip}:{TURN_PORT}?transport=tcp",
        f"turns:{system.ip}:{TURN_TLS_PORT}?transport=tcp",
    ]
    m = parsed[0]
    assert m is not None and m.group(2).endswith(":wendy")
    client = TurnUdpClient((system.ip, TURN_PORT), m.group(2), m.group(3))
    try:
        assert (await client.allocate()).ok
    finally:
        client.close()
