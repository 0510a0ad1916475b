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

`up` prints coturn's address and ports. The ICE-TCP port takes garbage (random bytes,
an unfinished 64 KiB frame kept open, a STUN binding for nobody) and still serves an
ICE-TCP-only call.

Then coturn itself, asked directly (tests/support/turn_client.py): no, empty, wrong or
forged credentials are refused (401); relays to loopback, the system's own other
addresses and the private ranges are refused (403), to the SFU's address not; one
join's credentials hold at most MEDIAPLANE_TURN_USER_QUOTA allocations (486 past it);
WHIP answers carry the TURN servers as Link headers. Last, the module's first join's
credentials (TTL 60 s, taken at the start) have expired: refused for a new allocation,
while a fresh join gets new ones that work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aioice import stun
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from playwright.async_api import Browser, Page, async_playwright

from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from mediaplane.turn.credentials import mint
from tests.integration.test_web_call import decoded_over, open_call
from tests.support import netns
from tests.support.chromium import CHROMIUM_ARGS
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
# The shortest TURN credential lifetime the setting allows: the first join's credentials
# (taken when the module starts) have expired by the last test, which shows it.
TTL_S = 60

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
    extra = {"MEDIAPLANE_TURN_CREDENTIAL_TTL_S": str(TTL_S)}
    async with system_in_namespace(lan, SYSTEM, tmp_path_factory.mktemp("turnsys"), extra) as s:
        yield s
    log.info("mediaplane up said:\n%s", s.output()[-3000:])


@dataclass
class FirstJoin:
    """The module's first join: its TURN credentials and an allocation made with them."""

    username: str
    credential: str
    expiry: int
    client: TurnUdpClient
    relayed: str


@pytest.fixture(scope="module", autouse=True)
async def first_join(system: NsSystem) -> AsyncIterator[FirstJoin]:
    room = f"first-{uuid.uuid4().hex[:6]}"
    username, credential = turn_of((await join(system, room, "early"))["iceServers"])
    client = TurnUdpClient((system.ip, TURN_PORT), username, credential)
    try:
        got = await client.allocate(lifetime_s=600)  # outlives the credentials
        assert got.ok, got
        relayed = got.attributes["XOR-RELAYED-ADDRESS"][0]  # type: ignore[index]
        yield FirstJoin(username, credential, int(username.split(":")[0]), client, relayed)
    finally:
        client.close()


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


async def test_up_says_where_turn_listens(system: NsSystem) -> None:
    """`mediaplane up` prints coturn's address and ports (what to open in a firewall)."""
    out = system.output()
    line = re.search(r"turn +(\S+) udp\+tcp (\d+), tls (\d+) \(relay ports (\d+)-(\d+)", out)
    assert line is not None, out
    assert line.groups() == (system.ip, str(TURN_PORT), str(TURN_TLS_PORT), "50000", "59999")
    assert f"announced      {system.ip} (https" in out, out


async def call_through(
    name: str, chromium: Browser, lan: netns.Lan, system: NsSystem
) -> dict[tuple[str, str], dict[str, Any]]:
    """Two pages call each other with the firewall of CASES[name] in the way; asserts
    the selected pairs' shape, the decoded media, and that the firewall dropped packets."""
    case = CASES[name]
    room = f"fw-{name}-{uuid.uuid4().hex[:4]}"
    errors: list[str] = []
    pages: list[Page] = []
    with firewall(Link(lan, BROWSER), case) as hits:
        try:
            t0 = time.monotonic()
            for name in ("Alice", "Bob"):  # token links: no open join off loopback
                link = participant(Settings(), name.lower(), room)
                pages.append(await open_call(chromium, system, room, name, errors, link))  # type: ignore[arg-type]
            alice, bob = pages
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
    return pairs


@pytest.mark.parametrize("name", list(CASES))
async def test_a_call_through_a_strict_firewall(
    name: str, chromium: Browser, lan: netns.Lan, system: NsSystem
) -> None:
    await call_through(name, chromium, lan, system)


async def test_the_ice_tcp_port_shrugs_off_garbage_and_still_serves_a_call(
    chromium: Browser, lan: netns.Lan, system: NsSystem
) -> None:
    """The SFU worker's TCP port (new with ICE-TCP) takes anyone's connection: random
    bytes, frames of garbage, an RFC 4571 frame announced 65535 bytes long and never
    finished (kept open during the call), a STUN binding for an unknown ICE username.
    None of it brings the worker down or keeps a call over ICE-TCP alone from working."""
    target = (system.ip, RTC_SERVER_PORT)
    stalled: list[socket.socket] = []
    junk = [os.urandom(4096), b"\x00\x10" + os.urandom(16), b"\xff\xff" + os.urandom(64)]
    binding = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    binding.attributes["USERNAME"] = "nobody:nothing"
    binding.add_message_integrity(b"wrong-password")
    binding.add_fingerprint()
    raw = bytes(binding)
    junk.append(len(raw).to_bytes(2, "big") + raw)
    for i in range(40):
        sock = socket.create_connection(target, timeout=5)
        sock.sendall(junk[i % len(junk)])
        if i % len(junk) == 2:
            stalled.append(sock)  # the unfinished long frame stays open
        else:
            sock.close()
    try:
        pairs = await call_through("ice-tcp", chromium, lan, system)
    finally:
        for sock in stalled:
            sock.close()
    assert all(p["remote"]["protocol"] == "tcp" for p in pairs.values()), pairs


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


def own_addresses(lan: netns.Lan, index: int) -> list[str]:
    """Every IPv4 address of namespace `index` (the system's machine), loopback too."""
    out = subprocess.run(
        ["ip", "-n", lan.namespaces[index], "-4", "-o", "addr", "show"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    return [line.split()[3].split("/")[0] for line in out.splitlines()]


def address_on_lo(lan: netns.Lan, index: int, verb: str, address: str) -> None:
    ns = lan.namespaces[index]
    subprocess.run(["ip", "-n", ns, "addr", verb, f"{address}/32", "dev", "lo"],
                   check=True, timeout=10)  # fmt: skip


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
    # the system's machine has another private address besides the one it announces
    other = "192.168.77.1"
    address_on_lo(lan, SYSTEM, "add", other)
    try:
        # no credentials at all: a challenge (REALM, NONCE), no relay
        bare = await anonymous.allocate_without_credentials()
        assert not bare.ok and bare.code == 401, bare
        assert "XOR-RELAYED-ADDRESS" not in bare.attributes and "NONCE" in bare.attributes
        for client in (wrong, forged, anonymous):  # empty, wrong or forged credentials
            r = await client.allocate()
            assert not r.ok and r.code == 401, r
        assert (await good.allocate()).ok
        own = [a for a in own_addresses(lan, SYSTEM) if a != system.ip]
        assert {"127.0.0.1", other} <= set(own), own
        peers = [*own, "127.0.0.2", "10.1.2.3", lan.host_ip, lan.ip(BROWSER), "192.168.1.1",
                 "172.16.0.1", "169.254.1.1", "100.64.0.1", "0.0.0.0"]  # fmt: skip
        refused = {peer: (await good.create_permission(peer)).code for peer in peers}
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
        address_on_lo(lan, SYSTEM, "del", other)


async def test_one_joins_credentials_hold_at_most_the_user_quota_of_allocations(
    system: NsSystem,
) -> None:
    """MEDIAPLANE_TURN_USER_QUOTA (12): the 13th allocation at once with one join's
    credentials is refused (486); another participant is served meanwhile. (A slot
    given back by Refresh lifetime 0 was still counted right after: coturn frees it with
    the client's session, later.)"""
    quota = Settings().turn_user_quota
    room = f"quota-{uuid.uuid4().hex[:6]}"
    creds = turn_of((await join(system, room, "frank"))["iceServers"])
    server = (system.ip, TURN_PORT)
    clients = [TurnUdpClient(server, *creds) for _ in range(quota + 1)]
    other = TurnUdpClient(server, *turn_of((await join(system, room, "grace"))["iceServers"]))
    try:
        got = [await c.allocate() for c in clients]
        assert all(r.ok for r in got[:quota]), got[:quota]
        assert not got[quota].ok and got[quota].code == 486, got[quota]
        assert (await other.allocate()).ok  # someone else is not affected
    finally:
        for c in [*clients, other]:
            with contextlib.suppress(Exception):
                await c.refresh(0)
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


async def test_a_joins_credentials_expire_and_a_fresh_join_gets_working_ones(
    system: NsSystem, first_join: FirstJoin
) -> None:
    """The module's first join got credentials valid TTL_S seconds and made an
    allocation with them (first_join). Once they have expired (the other tests took
    most of that time), coturn refuses them for a new allocation and for refreshing the
    old one (401); a join now gets other credentials, expiring later, that work."""
    left = first_join.expiry - time.time()
    assert left <= TTL_S
    await asyncio.sleep(max(0.0, left + 1.5))
    server = (system.ip, TURN_PORT)
    again = TurnUdpClient(server, first_join.username, first_join.credential)
    try:
        refused = await again.allocate()
        assert not refused.ok and refused.code == 401, refused
        # an allocation made while they were valid is not cut: coturn keeps the key of
        # an authenticated allocation (a call longer than the TTL goes on)
        kept = await first_join.client.refresh(600)
        assert kept.ok, kept
    finally:
        again.close()
    room = f"cred-{uuid.uuid4().hex[:6]}"
    fresh = turn_of((await join(system, room, "early"))["iceServers"])
    expiry = int(fresh[0].split(":", 1)[0])
    assert fresh != (first_join.username, first_join.credential)
    assert time.time() + TTL_S - 30 <= expiry <= time.time() + TTL_S + 1  # minted just now
    # the REST-API pair of the system's secret, the identity in the username
    assert mint(Settings().secret("turn_secret"), "early", TTL_S, now=expiry - TTL_S) == fresh
    client = TurnUdpClient(server, *fresh)
    try:
        ok = await client.allocate()
        assert ok.ok, ok
        assert ok.attributes["XOR-RELAYED-ADDRESS"][0] == system.ip  # type: ignore[index]
    finally:
        with contextlib.suppress(Exception):
            await client.refresh(0)
        client.close()
