"""WHIP/WHEP refusals (each with its status and reason), CORS, PATCH rules, and the reaper
of sessions that never connect; after each, nothing is left in the room or the SFU."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from aiortc.rtcrtpsender import RTCRtpSender

from mediaplane.peer import PatternVideoTrack, ToneTrack
from mediaplane.settings import Settings
from mediaplane.sfu import SfuClient, SfuProcess, SfuRpcError
from mediaplane.state.redis_server import RedisServer
from tests.integration.test_whip import join, new_room
from tests.support.control import ControlInstance, admin, participant
from tests.support.whip_client import AiortcWhipClient

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)
SDP = {"Content-Type": "application/sdp"}


async def offer_sdp(*, audio_codec: str | None = None) -> str:
    """A real aiortc offer (audio + video, sendonly), optionally limited to one audio codec."""
    pc = RTCPeerConnection()
    audio = pc.addTransceiver(ToneTrack(), direction="sendonly")
    pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
    if audio_codec:
        caps = RTCRtpSender.getCapabilities("audio")
        audio.setCodecPreferences([c for c in caps.codecs if c.mimeType == audio_codec])
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(url: str, body: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15) as http:
        return await http.post(url, content=body, headers=headers)


async def sfu_counts(sfu: SfuProcess) -> dict[str, int]:
    client = await SfuClient.create(sfu.url, sfu.secret)
    try:
        stats = await client.server_stats()
        return {k: getattr(stats, k) for k in ("routers", "transports", "producers", "consumers")}
    finally:
        await client.close()


async def participants(settings: Settings, control: ControlInstance, room: str) -> list[Any]:
    async with httpx.AsyncClient() as http:
        r = await http.get(
            f"{control.http}/api/rooms/{room}/participants", headers=auth(admin(settings))
        )
    body: list[Any] = r.json()
    return body


async def test_whip_refusals(settings: Settings, control: ControlInstance, sfu: SfuProcess) -> None:
    room = await new_room(settings, control)
    url = f"{control.http}/whip/rooms/{room}"
    good = await offer_sdp()
    token = participant(settings, "obs", room)
    before = await sfu_counts(sfu)
    cases: list[tuple[str, str, str, dict[str, str], int, str]] = [
        ("not SDP", url, "hello", SDP | auth(token), 400, "not SDP"),
        ("no fingerprint", url, "\r\n".join(
            ln for ln in good.splitlines() if not ln.startswith("a=fingerprint")
        ), SDP | auth(token), 400, "fingerprint"),
        ("unknown fingerprint algorithm", url,
         re.sub(r"(?m)^a=fingerprint:\S+", "a=fingerprint:sha-999", good),
         SDP | auth(token), 400, "known algorithm"),
        ("malformed fingerprint value", url,
         re.sub(r"(?m)^(a=fingerprint:\S+) .*$", r"\1 AB:CD:zz", good),
         SDP | auth(token), 400, "known algorithm"),
        ("no ICE credentials", url, "\r\n".join(
            ln for ln in good.splitlines() if not ln.startswith("a=ice-ufrag")
        ), SDP | auth(token), 400, "ice-ufrag"),
        ("bad m-line", url, re.sub(r"(?m)^m=audio \d+", "m=audio port", good),
         SDP | auth(token), 400, "malformed SDP"),
        ("wrong content type", url, good, {"Content-Type": "text/plain"} | auth(token), 415,
         "application/sdp"),
        ("no token", url, good, SDP, 401, "missing bearer token"),
        ("bad token", url, good, SDP | auth("x.y.z"), 401, "token"),
        ("no publish grant", url, good,
         SDP | auth(participant(settings, "obs", room, can_publish=False)), 403, "can_publish"),
        ("only audio allowed", url, good,
         SDP | auth(participant(settings, "obs", room, can_publish_sources=["audio"])), 403,
         "publishing video"),
        ("other room's token", url, good, SDP | auth(participant(settings, "obs", "elsewhere")),
         403, "not valid for room"),
        ("unknown room", f"{control.http}/whip/rooms/no-such-room", good,
         SDP | auth(participant(settings, "obs", "no-such-room")), 404, "does not exist"),
        ("unsupported codec", url, await offer_sdp(audio_codec="audio/PCMU"), SDP | auth(token),
         406, "audio/PCMU"),
    ]  # fmt: skip
    for name, target, body, headers, status, reason in cases:
        r = await post(target, body, headers)
        assert r.status_code == status, (name, r.status_code, r.text)
        message = r.json()["error"]["message"]
        assert reason in message, (name, message)
        assert r.headers.get("access-control-allow-origin") == "*", name
        log.info("measured: %s -> %d %s", name, status, message)
    assert await participants(settings, control, room) == []
    # The room's router (made by the 406 case's join) stays for the room's empty timeout.
    after = await sfu_counts(sfu)
    assert {k: v for k, v in after.items() if k != "routers"} == {
        k: v for k, v in before.items() if k != "routers"
    }


async def test_whep_refusals(settings: Settings, control: ControlInstance) -> None:
    room = await new_room(settings, control)
    sig, alice, _ = await join(settings, control, room, "alice")
    try:
        await alice.publish(ToneTrack())
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        await pc.close()
        pc = RTCPeerConnection()
        pcmu = pc.addTransceiver("audio", direction="recvonly")
        pcmu.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
        )
        await pc.setLocalDescription(await pc.createOffer())
        pcmu_offer = pc.localDescription.sdp
        await pc.close()
        base = f"{control.http}/whep/rooms/{room}/participants"
        viewer = participant(settings, "viewer", room)
        alice_url = f"{base}/alice"
        cases = [
            ("unknown participant", f"{base}/nobody", offer, SDP | auth(viewer), 404,
             "not in room"),
            ("no subscribe grant", alice_url, offer,
             SDP | auth(participant(settings, "viewer", room, can_subscribe=False)), 403,
             "can_subscribe"),
            ("own identity", alice_url, offer, SDP | auth(participant(settings, "alice", room)),
             409, "identity of its own"),
            ("unknown room", f"{control.http}/whep/rooms/nope/participants/alice", offer,
             SDP | auth(participant(settings, "viewer", "nope")), 404, "does not exist"),
            ("not SDP", alice_url, "hello", SDP | auth(viewer), 400, "not SDP"),
            ("no ICE credentials", alice_url, "\r\n".join(
                ln for ln in offer.splitlines() if not ln.startswith("a=ice-pwd")
            ), SDP | auth(viewer), 400, "ice-pwd"),
            ("wrong content type", alice_url, offer, {"Content-Type": "text/plain"} | auth(viewer),
             415, "application/sdp"),
            ("no token", alice_url, offer, SDP, 401, "missing bearer token"),
            ("unsupported codec", alice_url, pcmu_offer, SDP | auth(viewer), 406, "audio/PCMU"),
        ]  # fmt: skip
        for name, target, body, headers, status, reason in cases:
            r = await post(target, body, headers)
            assert r.status_code == status, (name, r.status_code, r.text)
            assert reason in r.json()["error"]["message"], (name, r.text)
            assert r.headers.get("access-control-allow-origin") == "*", name
            log.info("measured: WHEP %s -> %d %s", name, status, r.json()["error"]["message"])
        # A video-only offer to an audio-only participant: nothing to send.
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        r = await post(f"{base}/alice", pc.localDescription.sdp, SDP | auth(viewer))
        await pc.close()
        assert r.status_code == 404 and "publishes audio" in r.text, r.text
        names = [p["identity"] for p in await participants(settings, control, room)]
        assert names == ["alice"]
    finally:
        await alice.close()
        await sig.close()


async def test_patch_delete_and_cors(settings: Settings, control: ControlInstance) -> None:
    room = await new_room(settings, control)
    whip = AiortcWhipClient(f"{control.http}/whip/rooms/{room}", participant(settings, "obs", room))
    try:
        await whip.publish(ToneTrack())
        await whip.wait_connected()
        assert whip.resource and whip.etag
        async with httpx.AsyncClient() as http:
            pre = await http.options(
                whip.resource,
                headers={"Origin": "http://example.test", "Access-Control-Request-Method": "PATCH"},
            )
        assert pre.status_code == 204
        assert "PATCH" in pre.headers["access-control-allow-methods"]
        assert "If-Match" in pre.headers["access-control-allow-headers"]
        assert pre.headers["accept-post"] == "application/sdp"

        frag = (
            "a=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
            "a=candidate:1 1 udp 2122260223 127.0.0.1 61764 typ host\r\na=end-of-candidates\r\n"
        )
        ufrag = next(
            ln.split(":", 1)[1]
            for ln in whip.pc.localDescription.sdp.splitlines()
            if ln.startswith("a=ice-ufrag:")
        )
        trickle = await whip.patch(frag.format(u=ufrag, p="x" * 22), if_match=whip.etag)
        assert trickle.status_code == 204, trickle.text
        stale = await whip.patch(frag.format(u=ufrag, p="x" * 22), if_match='"stale"')
        assert stale.status_code == 412, stale.text
        bad = await whip.patch("garbage")
        assert bad.status_code == 400, bad.text
        restart = await whip.patch(frag.format(u="newufrag", p="y" * 22), if_match="*")
        assert restart.status_code == 200, restart.text
        assert restart.headers["content-type"].startswith("application/trickle-ice-sdpfrag")
        assert "a=ice-ufrag:" in restart.text and "a=candidate:" in restart.text
        assert restart.headers["etag"] != whip.etag
        # A retried restart (same fragment, If-Match "*") restarts again: new credentials.
        again = await whip.patch(frag.format(u="newufrag", p="y" * 22), if_match="*")
        assert again.status_code == 200, again.text

        def server_ufrag(text: str) -> str:
            return next(ln for ln in text.splitlines() if ln.startswith("a=ice-ufrag:"))

        answer_ufrag = server_ufrag(whip.answer)
        assert len({answer_ufrag, server_ufrag(restart.text), server_ufrag(again.text)}) == 3
        assert again.headers["etag"] != restart.headers["etag"]
        # The old ETag is stale now.
        old = await whip.patch(frag.format(u="newufrag", p="y" * 22), if_match=whip.etag)
        assert old.status_code == 412, old.text
        # Methods the session does not have: 405 with Allow.
        async with httpx.AsyncClient() as http:
            for method in ("GET", "PUT", "POST"):
                r = await http.request(method, whip.resource, headers=auth(whip.token))
                assert r.status_code == 405, (method, r.status_code, r.text)
                assert "PATCH" in r.headers.get("allow", ""), (method, r.headers)

        async with httpx.AsyncClient() as http:
            other = await http.delete(
                whip.resource, headers=auth(participant(settings, "mallory", room))
            )
            anonymous = await http.delete(whip.resource)
            unknown = await http.delete(
                f"{control.http}/whip/sessions/nosuchsession", headers=auth(whip.token)
            )
        assert (other.status_code, anonymous.status_code, unknown.status_code) == (403, 401, 404)
        assert await whip.delete() == 200
        assert await participants(settings, control, room) == []
    finally:
        await whip.close()


async def test_whep_patch_and_endpoint_preflight(
    settings: Settings, control: ControlInstance
) -> None:
    room = await new_room(settings, control)
    sig, alice, _ = await join(settings, control, room, "alice")
    url = f"{control.http}/whep/rooms/{room}/participants/alice"
    whep = AiortcWhipClient(url, participant(settings, "viewer", room, can_publish=False))
    try:
        await alice.publish(ToneTrack())
        async with httpx.AsyncClient() as http:
            pre = await http.options(
                url,
                headers={"Origin": "http://player.test", "Access-Control-Request-Method": "POST",
                         "Access-Control-Request-Headers": "authorization, content-type"},
            )  # fmt: skip
        assert pre.status_code == 204, pre.text
        assert pre.headers["access-control-allow-origin"] == "*"
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert "Authorization" in pre.headers["access-control-allow-headers"]
        assert pre.headers["accept-post"] == "application/sdp"
        await whep.play("audio")
        await whep.wait_connected()
        assert whep.resource and "/whep/sessions/" in whep.resource and whep.etag
        ufrag = next(
            ln.split(":", 1)[1]
            for ln in whep.pc.localDescription.sdp.splitlines()
            if ln.startswith("a=ice-ufrag:")
        )
        frag = (
            "a=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
            "a=candidate:1 1 udp 2122260223 127.0.0.1 61764 typ host\r\n"
        )
        trickle = await whep.patch(frag.format(u=ufrag, p="x" * 22), if_match=whep.etag)
        assert trickle.status_code == 204, trickle.text
        wrong_type = await whep.http.patch(
            whep.resource, content="a=x", headers=whep._headers("application/sdp")
        )
        assert wrong_type.status_code == 415, wrong_type.text
        restart = await whep.patch(frag.format(u="newufrag", p="y" * 22), if_match="*")
        assert restart.status_code == 200, restart.text
        assert restart.headers["etag"] != whep.etag
        assert "a=ice-ufrag:" in restart.text and "a=candidate:" in restart.text
        exposed = restart.headers["access-control-expose-headers"]
        assert "ETag" in exposed and "Location" in exposed, exposed
        assert await whep.delete() == 200
        assert [p["identity"] for p in await participants(settings, control, room)] == ["alice"]
    finally:
        await whep.close()
        await alice.close()
        await sig.close()


@pytest.fixture
async def quick_reaper(
    sfu: SfuProcess, redis_server: RedisServer
) -> AsyncIterator[tuple[Settings, ControlInstance]]:
    settings = Settings(env="test", whip_connect_timeout_s=2.0)
    async with ControlInstance.running(
        settings, sfu_url=sfu.url, redis_url=redis_server.url
    ) as inst:
        yield settings, inst


async def test_sessions_that_never_connect_are_reaped(
    quick_reaper: tuple[Settings, ControlInstance], sfu: SfuProcess
) -> None:
    settings, control = quick_reaper
    room = await new_room(settings, control)
    sig, bob, _ = await join(settings, control, room, "bob")
    before = await sfu_counts(sfu)
    try:
        # The offer is answered, but the client never applies the answer: no ICE, no DTLS.
        body = await offer_sdp()
        t0 = time.monotonic()
        r = await post(
            f"{control.http}/whip/rooms/{room}",
            body,
            SDP | auth(participant(settings, "ghost", room)),
        )
        assert r.status_code == 201, r.text
        joined = await sig.wait_event("peerJoined", lambda d: d["peer"]["identity"] == "ghost")
        ghost = joined["peer"]["peerId"]
        closed = [
            await sig.wait_event("producerClosed", lambda d: d["peerId"] == ghost, 10)
            for _ in range(2)
        ]
        left = await sig.wait_event("peerLeft", lambda d: d["peerId"] == ghost, 10)
        elapsed = time.monotonic() - t0
        assert left["reason"] == "not connected within 2 s", left
        assert len({c["producerId"] for c in closed}) == 2
        assert 1.5 <= elapsed < 10, elapsed
        assert [p["identity"] for p in await participants(settings, control, room)] == ["bob"]

        # The session's transport, producers and consumers close just after peerLeft is
        # sent. Routers are compared as "no more than before": the shared SFU releases
        # other tests' emptied rooms (300 s empty timeout) while this runs, and a WHIP
        # session makes no router of its own.
        def settled(now: dict[str, int]) -> bool:
            return now["routers"] <= before["routers"] and all(
                now[k] == before[k] for k in ("transports", "producers", "consumers")
            )

        async with asyncio.timeout(5):
            while not settled(now := await sfu_counts(sfu)):  # noqa: ASYNC110 (polled stats)
                await asyncio.sleep(0.1)
        assert settled(now), (now, before)
        async with httpx.AsyncClient() as http:
            gone = await http.delete(
                f"{control.http}{r.headers['location']}",
                headers=auth(participant(settings, "ghost", room)),
            )
        assert gone.status_code == 200  # ended lately: the DELETE is still answered
        log.info("measured: unconnected WHIP session reaped after %.2f s (timeout 2 s)", elapsed)
    finally:
        await bob.close()
        await sig.close()


async def test_sfu_rpc_for_whep_routers_refuses_bad_input(client: SfuClient) -> None:
    room = await client.create_router(f"whep-rpc-{time.monotonic_ns()}")
    opus = {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2}
    try:
        cases: list[tuple[str, Any, str]] = [
            ("no codecs", client.create_router_with_codecs(room.router_id, "k1", []),
             "INVALID_PARAMS"),
            ("unknown codec", client.create_router_with_codecs(
                room.router_id, "k2", [{"kind": "audio", "mimeType": "audio/nope",
                                        "clockRate": 8000}]), "INVALID_PARAMS"),
            ("duplicate payload type", client.create_router_with_codecs(
                room.router_id, "k3", [opus | {"preferredPayloadType": 111},
                                       {"kind": "video", "mimeType": "video/VP8",
                                        "clockRate": 90000, "preferredPayloadType": 111}]),
             "INVALID_PARAMS"),
            ("unknown near router", client.create_router_with_codecs("nope", "k4", [opus]),
             "NOT_FOUND"),
            ("unknown producer", client.pipe_producer("nope", room.router_id), "NOT_FOUND"),
        ]  # fmt: skip
        for name, call, code in cases:
            with pytest.raises(SfuRpcError) as err:
                await call
            assert err.value.code == code, (name, err.value)
        own = await client.create_router_with_codecs(
            room.router_id, "k5", [opus | {"preferredPayloadType": 111}]
        )
        assert own.worker_pid == room.worker_pid
        assert own.rtp_capabilities["codecs"][0]["preferredPayloadType"] == 111
        with pytest.raises(SfuRpcError) as err:
            await client.create_router_with_codecs(room.router_id, "k5", [opus])
        assert err.value.code == "INVALID_STATE"
        await client.close_router(own.router_id)
    finally:
        await client.close_router(room.router_id)
