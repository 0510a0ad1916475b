"""One participant or one address cannot exhaust the SFU or the control plane (issue 17
item 1). Found: one socket made 1000 recv transports, after which createTransport failed
for everyone ("no more available ports"); 300 idle sockets from one address in 6 s.
Each attack here runs against the real SFU, Redis and control plane, is refused at its cap
(`limit_exceeded` naming the setting, close code 4429, HTTP 429), the count is given back
when the thing closes, and a normal participant is still served afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mediaplane.control.limits import Slots
from mediaplane.control.whip.service import WhipService
from mediaplane.peer import MediasoupPeer, ToneTrack, ortc
from mediaplane.peer.signaling_client import SignalingClient, SignalingReplyError
from mediaplane.settings import Settings
from mediaplane.sfu import SfuClient, SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.integration.test_whip_errors import offer_sdp
from tests.support.control import ControlInstance, admin, participant
from tests.support.mediacheck import collect_track_audio, dominant_frequency, rms
from tests.support.whip_client import AiortcWhipClient

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

CAPS = {
    "max_consumers_per_peer": 3,
    "max_room_producers": 6,
    "ws_max_connections_per_address": 5,
    "ws_max_connections": 8,
    "whip_max_sessions_per_address": 2,
    "whip_max_sessions_per_room": 3,
}  # the transport and per-kind producer caps keep their defaults (4 and 4)


@pytest.fixture(scope="module")
def capped_settings() -> Settings:
    return Settings(env="test", **CAPS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def capped(
    capped_settings: Settings, sfu: SfuProcess, redis_server: RedisServer
) -> AsyncIterator[ControlInstance]:
    async with ControlInstance.running(
        capped_settings, sfu_url=sfu.url, redis_url=redis_server.url
    ) as inst:
        yield inst


def audio_parameters(n: int) -> dict[str, Any]:
    return {
        "mid": str(n),
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000,
                    "channels": 2, "parameters": {}, "rtcpFeedback": []}],
        "headerExtensions": [],
        "encodings": [{"ssrc": 1000 + n}],
        "rtcp": {"cname": "mallory"},
    }  # fmt: skip


def video_parameters(n: int) -> dict[str, Any]:
    return {
        "mid": str(n),
        "codecs": [{"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000,
                    "parameters": {}, "rtcpFeedback": []}],
        "headerExtensions": [],
        "encodings": [{"ssrc": 2000 + n}],
        "rtcp": {"cname": "mallory"},
    }  # fmt: skip


async def refused(sig: SignalingClient, method: str, data: dict[str, Any]) -> str:
    with pytest.raises(SignalingReplyError) as err:
        await sig.request(method, data)
    assert err.value.code == "limit_exceeded", err.value
    return err.value.message


async def sfu_transports(sfu: SfuProcess) -> int:
    client = await SfuClient.create(sfu.url, sfu.secret)
    try:
        return (await client.server_stats()).transports
    finally:
        await client.close()


async def test_one_participant_is_refused_at_its_transport_producer_and_consumer_caps(
    capped_settings: Settings, capped: ControlInstance, sfu: SfuProcess
) -> None:
    settings, room = capped_settings, f"caps-{uuid.uuid4().hex[:6]}"
    mallory = await SignalingClient.connect(capped.ws(room), participant(settings, "mallory", room))
    alice_sig = bob_sig = None
    alice = bob = None
    try:
        joined = await mallory.request("join", {})
        before = await sfu_transports(sfu)
        send = await mallory.request("createTransport", {"direction": "send"})
        recvs = [await mallory.request("createTransport", {"direction": "recv"}) for _ in range(3)]
        for direction in ("recv", "send", "recv"):  # the 5th, 6th, 7th: refused
            message = await refused(mallory, "createTransport", {"direction": direction})
            assert "at most 4 transports per participant" in message, message
            assert "MEDIAPLANE_MAX_TRANSPORTS_PER_PEER" in message
        assert await sfu_transports(sfu) - before == 4  # the refusals never reached the SFU

        tid = send["transportId"]
        audio = [
            await mallory.request("produce", {"transportId": tid, "kind": "audio",
                                              "rtpParameters": audio_parameters(n)})
            for n in range(4)
        ]  # fmt: skip
        message = await refused(
            mallory, "produce",
            {"transportId": tid, "kind": "audio", "rtpParameters": audio_parameters(4)},
        )  # fmt: skip
        assert "at most 4 audio producers per participant" in message, message
        for n in (5, 6):  # video is a kind of its own: 2 more, then the room's cap (6)
            await mallory.request("produce", {"transportId": tid, "kind": "video",
                                              "rtpParameters": video_parameters(n)})  # fmt: skip
        message = await refused(
            mallory, "produce",
            {"transportId": tid, "kind": "video", "rtpParameters": video_parameters(7)},
        )  # fmt: skip
        assert "at most 6 producers per room (MEDIAPLANE_MAX_ROOM_PRODUCERS)" in message, message

        # Closing tracks gives their places back: a normal participant can publish.
        for reply in audio[:2]:
            await mallory.request("closeProducer", {"producerId": reply["producerId"]})
        alice_sig = await SignalingClient.connect(
            capped.ws(room), participant(settings, "alice", room)
        )
        alice = MediasoupPeer(
            alice_sig, (await alice_sig.request("join", {}))["routerRtpCapabilities"]
        )
        tone = await alice.publish(ToneTrack(freq=660.0))

        caps = ortc.receive_rtp_capabilities(joined["routerRtpCapabilities"])
        consume = {"transportId": recvs[0]["transportId"], "producerId": tone,
                   "rtpCapabilities": caps}  # fmt: skip
        for _ in range(3):
            await mallory.request("consume", consume)
        message = await refused(mallory, "consume", consume)
        assert "at most 3 consumers per participant" in message, message

        # A second participant still gets a transport, consumes, and hears the tone.
        bob_sig = await SignalingClient.connect(capped.ws(room), participant(settings, "bob", room))
        bob = MediasoupPeer(bob_sig, (await bob_sig.request("join", {}))["routerRtpCapabilities"])
        _, track = await bob.subscribe(tone)
        pcm = (await collect_track_audio(track, 2.0))[24000:]
        assert rms(pcm) > 0.05 and abs(dominant_frequency(pcm, 48000) - 660.0) <= 5.0
    finally:
        for peer in (alice, bob):
            if peer is not None:
                await peer.close()
        for sig in (mallory, alice_sig, bob_sig):
            if sig is not None:
                await sig.close()


async def open_socket(inst: ControlInstance, url: str, source: str) -> ClientConnection:
    return await connect(url, local_addr=(source, 0), open_timeout=5)


async def closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    try:
        await asyncio.wait_for(ws.recv(), 5)
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
    raise AssertionError("the server sent a message instead of closing")


async def counted(slots: Slots, key: str | None, want: int) -> None:
    """Wait until `key` (None: all keys) holds `want` slots."""
    async with asyncio.timeout(5):
        while (slots.in_use if key is None else slots.count(key)) != want:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # the server gives slots back on its side


async def test_signaling_sockets_are_capped_per_address_and_in_all_and_released_on_close(
    capped_settings: Settings, capped: ControlInstance
) -> None:
    settings, room = capped_settings, f"socks-{uuid.uuid4().hex[:6]}"
    slots: Slots = capped.app.state.ws_slots
    await counted(slots, None, 0)  # the sockets of an earlier test are closing
    url = f"{capped.ws(room)}?access_token={participant(settings, 'idle', room)}"
    idle: list[ClientConnection] = []
    try:
        # Idle sockets that never send a thing count from the handshake on.
        idle += [await open_socket(capped, url, "127.0.0.1") for _ in range(5)]
        await counted(slots, "127.0.0.1", 5)
        over = await open_socket(capped, url, "127.0.0.1")
        code, reason = await closed_with(over)
        assert code == 4429, (code, reason)
        assert "at most 5 signaling connections per client address" in reason, reason
        # Another address is still served, up to the total (8)...
        idle += [await open_socket(capped, url, "127.0.0.2") for _ in range(3)]
        await counted(slots, "127.0.0.2", 3)
        code, reason = await closed_with(await open_socket(capped, url, "127.0.0.3"))
        assert code == 4429 and "MEDIAPLANE_WS_MAX_CONNECTIONS)" in reason, (code, reason)
        assert slots.in_use == 8  # refused sockets gave their slot back
    finally:
        for ws in idle:
            await ws.close()
    # ...and every slot is given back when the sockets close: no leak.
    await counted(slots, "127.0.0.1", 0)
    await counted(slots, "127.0.0.2", 0)
    assert slots.in_use == 0
    sig = await SignalingClient.connect(capped.ws(room), participant(settings, "alice", room))
    try:
        await sig.request("join", {})
        assert (await sig.request("createTransport", {"direction": "recv"}))["transportId"]
        assert slots.count("127.0.0.1") == 1
    finally:
        await sig.close()
    await counted(slots, "127.0.0.1", 0)


@contextlib.asynccontextmanager
async def http_from(source: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, timeout=15) as http:
        yield http


async def test_whip_sessions_are_capped_per_address_and_per_room(
    capped_settings: Settings, capped: ControlInstance
) -> None:
    settings, room = capped_settings, f"whipcap-{uuid.uuid4().hex[:6]}"
    whip: WhipService = capped.app.state.whip
    offer = await offer_sdp()
    url = f"{capped.http}/whip/rooms/{room}"

    def headers(identity: str, in_room: str = room) -> dict[str, str]:
        token = participant(settings, identity, in_room)
        return {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}

    locations: list[tuple[str, str]] = []
    async with http_from("127.0.0.1") as one, http_from("127.0.0.2") as two:
        r = await one.post(f"{capped.http}/api/rooms", json={"name": room},
                           headers={"Authorization": f"Bearer {admin(settings)}"})  # fmt: skip
        assert r.status_code == 201, r.text
        for n in range(2):
            r = await one.post(url, content=offer, headers=headers(f"cam{n}"))
            assert r.status_code == 201, r.text
            locations.append((r.headers["location"], f"cam{n}"))
        r = await one.post(url, content=offer, headers=headers("cam2"))
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "limit_exceeded"
        assert "MEDIAPLANE_WHIP_MAX_SESSIONS_PER_ADDRESS" in r.json()["error"]["message"]
        r = await two.post(url, content=offer, headers=headers("cam3"))  # another address
        assert r.status_code == 201, r.text
        locations.append((r.headers["location"], "cam3"))
        r = await two.post(url, content=offer, headers=headers("cam4"))  # the room is full
        assert r.status_code == 429 and "per room" in r.text, r.text
        assert whip.slots.by_address.count("127.0.0.1") == 2
        assert whip.slots.by_room.count(room) == 3
        for location, identity in locations:
            r = await one.delete(f"{capped.http}{location}", headers=headers(identity))
            assert r.status_code == 200, r.text
    # Ended sessions gave their places back; a normal publisher connects and is served.
    assert whip.slots.by_address.count("127.0.0.1") == 0 and whip.slots.by_room.count(room) == 0
    assert whip.slots.by_address.in_use == 0
    client = AiortcWhipClient(url, participant(settings, "obs", room))
    try:
        await client.publish(ToneTrack())
        await client.wait_connected()
        assert whip.slots.by_address.count("127.0.0.1") == 1
    finally:
        await client.close()
