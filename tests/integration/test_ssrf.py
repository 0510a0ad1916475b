"""SSRF through sources (issue 17 item 4): URLs a room's admin gives the server to connect
to (injection sources, RTMP egress targets) may not reach loopback, private, link-local
or this machine's addresses unless MEDIAPLANE_OUTBOUND_ALLOW names them.

Everything real: the SFU, Redis, the control plane, the media manager and its GStreamer
workers; the targets are a Redis server (as the issue's attacker aimed at), a closed
port, an HTTP server answering 404, and listeners on 127.0.0.2 that count connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from mediaplane.peer import MediasoupPeer
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer, free_tcp_port
from mediaplane.url_guard import REFUSED
from tests.support.control import participant
from tests.support.media import LOOPBACK_OUTBOUND, OPUS, MediaService, wait_job
from tests.support.sources import HttpFiles, make_av_file, make_hls
from tests.support.stack import Stack, system
from tests.unit.test_url_guard import LOOPBACK_URLS

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def target_redis(tmp_path: Path) -> AsyncIterator[tuple[int, aioredis.Redis]]:
    """A Redis server only this test talks to (one connection), and that connection."""
    server = await RedisServer.start(tmp_path / "target-redis")
    client = aioredis.from_url(server.url, single_connection_client=True)
    try:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        yield port, client
    finally:
        await client.aclose()
        await server.stop()


async def connections(client: aioredis.Redis) -> int:
    stats: dict[str, Any] = await client.info("stats")
    return int(stats["total_connections_received"])


@contextlib.asynccontextmanager
async def counting_listener(host: str) -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP listener on `host` (a loopback address) that counts who connected."""
    seen: list[int] = []

    async def on_connect(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append(1)
        w.close()

    server = await asyncio.start_server(on_connect, host, 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()


async def room_with_viewer(stack: Stack, http: httpx.AsyncClient) -> tuple[str, Any]:
    room = f"ssrf-{uuid.uuid4().hex[:6]}"
    assert (await http.post("/api/rooms", json={"name": room})).status_code in (200, 201)
    sig = await SignalingClient.connect(
        stack.control.ws(room), participant(stack.settings, "viewer", room)
    )
    joined = await sig.request("join", {"displayName": "viewer"})
    return room, (sig, MediasoupPeer(sig, joined["routerRtpCapabilities"]))


async def close_viewer(viewer: Any) -> None:
    await viewer[1].close()
    await viewer[0].close()


async def ended(http: httpx.AsyncClient, url: str, timeout: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            rec: dict[str, Any] = (await http.get(url)).json()
            if rec["state"] in ("failed", "completed"):
                return rec
            await asyncio.sleep(0.2)


EGRESS = {"output": "rtmp", "audioOnly": True, "width": 320, "height": 180, "fps": 10}


async def test_loopback_forms_refused_alike(
    sfu: SfuProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Every spelling of loopback (and the Redis, closed and HTTP-404 ports behind it) is
    the same 400 with the same message on both routes; Redis sees no connection; then a
    file injection and a participant are still served."""
    async with (
        target_redis(tmp_path) as (redis_port, probe),
        HttpFiles.serving(tmp_path) as web,
        system(tmp_path, sfu, redis_server.url, control_allow=[], media_allow=[]) as stack,
        stack.http() as http,
    ):
        room, viewer = await room_with_viewer(stack, http)
        try:
            before = await connections(probe)
            replies: dict[str, set[tuple[int, str]]] = {"injection": set(), "egress": set()}
            tried = 0
            for port in (redis_port, free_tcp_port(), web.port):
                for form in LOOPBACK_URLS:
                    url = form.replace("6379", str(port))
                    for route, body in (
                        ("injection", {"source": url, "video": False}),
                        ("egress", {**EGRESS, "rtmpUrl": "rtmp://" + url.split("://", 1)[1]}),
                    ):
                        path = "injections" if route == "injection" else "egress"
                        r = await http.post(f"/api/rooms/{room}/{path}", json=body)
                        replies[route].add((r.status_code, r.json()["error"]["message"]))
                        tried += 1
            after = await connections(probe)
            # Served afterwards: a file injection plays, another participant joins.
            make_av_file(stack.media.root / "inject" / f"{room}.mp4", seconds=2.0)
            r = await http.post(
                f"/api/rooms/{room}/injections", json={"source": f"inject/{room}.mp4"}
            )
            assert r.status_code == 201, r.text
            done = await ended(http, f"/api/rooms/{room}/injections/{r.json()['id']}")
            second = await SignalingClient.connect(
                stack.control.ws(room), participant(stack.settings, "second", room)
            )
            joined = await second.request("join", {"displayName": "second"})
            await second.close()
        finally:
            await close_viewer(viewer)
    assert replies == {
        "injection": {(400, f"source: {REFUSED}")},
        "egress": {(400, f"rtmpUrl: {REFUSED}")},
    }, replies
    assert after == before, (before, after)
    assert done["state"] == "completed", done
    assert joined["routerRtpCapabilities"]
    log.info("measured: %d loopback URLs x 2 routes refused alike (%s); Redis connections "
             "%d -> %d", tried // 2, replies, before, after)  # fmt: skip


async def test_failures_say_the_same_whatever_is_behind_the_port(
    sfu: SfuProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Allowed (loopback listed), a Redis port, a closed port and an HTTP 404 fail every
    injection kind and an RTMP egress with one text; a real HTTP file still plays."""
    (tmp_path / "web").mkdir()
    async with (
        target_redis(tmp_path) as (redis_port, _probe),
        HttpFiles.serving(tmp_path / "web") as web,
        system(
            tmp_path, sfu, redis_server.url, control_allow=LOOPBACK_OUTBOUND,
            media_allow=LOOPBACK_OUTBOUND,
        ) as stack,
        stack.http() as http,
    ):  # fmt: skip
        room, viewer = await room_with_viewer(stack, http)
        try:
            t0 = time.monotonic()
            started: dict[str, str] = {}
            for label, port in (("redis", redis_port), ("closed", free_tcp_port()),
                                ("http-404", web.port)):  # fmt: skip
                for scheme in ("http", "rtsp", "rtmp"):
                    source = f"{scheme}://127.0.0.1:{port}/live/x.mp4"
                    r = await http.post(
                        f"/api/rooms/{room}/injections", json={"source": source, "video": False}
                    )
                    assert r.status_code == 201, r.text
                    started[f"inject {scheme} {label}"] = f"injections/{r.json()['id']}"
                r = await http.post(
                    f"/api/rooms/{room}/egress",
                    json={**EGRESS, "rtmpUrl": f"rtmp://127.0.0.1:{port}/live/x"},
                )
                if r.status_code == 202:
                    started[f"egress {label}"] = f"egress/{r.json()['id']}"
                else:  # refused before the reply: the same text either way
                    started[f"egress {label}"] = r.json()["error"]["message"]
            errors: dict[str, str] = {}
            for label, ref in started.items():
                if ref.startswith(("injections/", "egress/")):
                    rec = await ended(http, f"/api/rooms/{room}/{ref}")
                    assert rec["state"] == "failed", rec
                    errors[label] = rec["error"]
                else:
                    errors[label] = ref
            spent = time.monotonic() - t0
            make_av_file(tmp_path / "web" / "real.mp4", seconds=2.0)
            r = await http.post(
                f"/api/rooms/{room}/injections",
                json={"source": web.url("real.mp4"), "video": False},
            )
            real = await ended(http, f"/api/rooms/{room}/injections/{r.json()['id']}")
        finally:
            await close_viewer(viewer)
    injected = {v for k, v in errors.items() if k.startswith("inject")}
    egressed = {v.split("start failed: ")[-1].split("the job ended: ")[-1]
                for k, v in errors.items() if k.startswith("egress")}  # fmt: skip
    assert len(injected) == 1, errors
    assert len(egressed) == 1, errors
    for text in errors.values():
        for leak in ("Unauthorized", "Not Found", "text file", "ERR", "404", "redis", "Redis"):
            assert leak not in text, (leak, text)
    assert real["state"] == "completed", real
    log.info("measured: %d failures in %.1f s, injection error %r, egress error %r",
             len(errors), spent, injected, egressed)  # fmt: skip


async def test_worker_checks_each_connection(
    sfu: SfuProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The media worker checks every connection it makes: a redirect or an HLS segment to
    an address not allowed (127.0.0.2 while only 127.0.0.1 is) never connects, a
    redirect to an allowed one plays, and a worker whose manager allows nothing refuses
    what the control plane let through."""
    web_root = tmp_path / "web"
    make_av_file(web_root / "real.mp4", seconds=2.0)
    playlist = make_hls(web_root / "hls", seconds=4.0)
    async with counting_listener("127.0.0.2") as (other_port, seen):
        elsewhere = f"http://127.0.0.2:{other_port}"
        text = playlist.read_text()
        segments = [line for line in text.splitlines() if line and not line.startswith("#")]
        (playlist.parent / "away.m3u8").write_text(
            "\n".join(f"{elsewhere}/{ln}" if ln in segments else ln for ln in text.splitlines())
        )
        redirects = {"/to-elsewhere.mp4": f"{elsewhere}/real.mp4", "/to-real.mp4": "/real.mp4"}
        async with (
            HttpFiles.serving(web_root, redirects=redirects) as web,
            system(
                tmp_path, sfu, redis_server.url, control_allow=["127.0.0.1/32"],
                media_allow=["127.0.0.1/32"],
            ) as stack,
            stack.http() as http,
        ):  # fmt: skip
            room, viewer = await room_with_viewer(stack, http)
            try:
                outcome = {}
                for label, source in (
                    ("redirect to 127.0.0.2", web.url("to-elsewhere.mp4")),
                    ("HLS segments on 127.0.0.2", web.url("hls/away.m3u8")),
                    ("redirect to 127.0.0.1", web.url("to-real.mp4")),
                ):
                    r = await http.post(
                        f"/api/rooms/{room}/injections", json={"source": source, "video": False}
                    )
                    assert r.status_code == 201, r.text
                    rec = await ended(http, f"/api/rooms/{room}/injections/{r.json()['id']}")
                    outcome[label] = (rec["state"], rec["error"])
            finally:
                await close_viewer(viewer)
        async with (
            HttpFiles.serving(web_root) as web,
            system(
                tmp_path / "b", sfu, redis_server.url, control_allow=LOOPBACK_OUTBOUND,
                media_allow=[],
            ) as stack,
            stack.http() as http,
        ):  # fmt: skip
            room, viewer = await room_with_viewer(stack, http)
            try:
                r = await http.post(
                    f"/api/rooms/{room}/injections",
                    json={"source": web.url("real.mp4"), "video": False},
                )
                assert r.status_code == 201, r.text
                rec = await ended(http, f"/api/rooms/{room}/injections/{r.json()['id']}")
                outcome["worker allows nothing"] = (rec["state"], rec["error"])
            finally:
                await close_viewer(viewer)
    assert outcome["redirect to 127.0.0.1"][0] == "completed", outcome
    for label in ("redirect to 127.0.0.2", "HLS segments on 127.0.0.2", "worker allows nothing"):
        assert outcome[label][0] == "failed", outcome
    assert seen == [], "a refused address was connected to"
    log.info("measured: %s; 127.0.0.2 connections: %d", outcome, len(seen))


async def test_worker_checks_rtmp_targets(tmp_path: Path) -> None:
    """rtmp2sink connects through the same guard: a media manager that allows nothing
    never connects to a loopback RTMP target; one that allows loopback does."""
    async with counting_listener("127.0.0.1") as (port, seen):
        body = {"kind": "stream", "rtmpUrl": f"rtmp://127.0.0.1:{port}/live/x", "audio": OPUS}
        outcome = {}
        for label, allow in (("allows nothing", []), ("allows loopback", LOOPBACK_OUTBOUND)):
            env = {"MEDIAPLANE_OUTBOUND_ALLOW": json.dumps(allow)}
            media = await MediaService.start(tmp_path / label, extra_env=env)
            try:
                async with media.client() as http:
                    r = await http.post("/jobs", json=body)
                    assert r.status_code == 202, r.text
                    job = await wait_job(http, r.json()["id"], lambda j: j["state"] == "failed")
            finally:
                await media.stop()
            outcome[label] = (len(seen), job["error"])
    assert outcome["allows nothing"][0] == 0, outcome
    assert outcome["allows loopback"][0] >= 1, outcome
    assert outcome["allows nothing"][1] == outcome["allows loopback"][1], outcome
    log.info("measured: RTMP target connections %s", outcome)
