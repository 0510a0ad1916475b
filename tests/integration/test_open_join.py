"""Open join (issue 17 item 2): POST /api/dev/token minted a participant token for anyone
by default, and the rooms those joins made stayed listed (and in Redis) forever.

Now: off unless MEDIAPLANE_OPEN_JOIN=true, refused at start off loopback, rate-limited per
client address, and a room a join made is deleted with its last participant (after
MEDIAPLANE_JOINED_ROOM_EMPTY_TIMEOUT_S)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state import keys
from mediaplane.state.redis_server import RedisServer
from tests.support.control import ControlInstance, admin, participant

pytestmark = pytest.mark.integration


async def test_open_join_is_refused_at_start_on_a_network_address(tmp_path: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: the check refuses before anything binds or connects.
    env = {**os.environ, "MEDIAPLANE_ENV": "test", "MEDIAPLANE_OPEN_JOIN": "true",
           "MEDIAPLANE_RTC_ANNOUNCED_ADDRESS": "192.0.2.10",
           "MEDIAPLANE_REDIS_URL": "redis://127.0.0.1:1",
           "MEDIAPLANE_DATA_DIR": str(tmp_path)}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediaplane.control", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0
    text = out.decode()
    assert "MEDIAPLANE_OPEN_JOIN" in text and "192.0.2.10" in text, text[-2000:]


async def test_open_join_is_off_unless_asked_for(control_default: ControlInstance) -> None:
    async with httpx.AsyncClient(base_url=control_default.http, timeout=10) as http:
        r = await http.post("/api/dev/token", json={"room": "anything", "name": "Eve"})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"


async def test_open_join_is_rate_limited_and_its_rooms_go_away(
    sfu: SfuProcess, redis_server: RedisServer
) -> None:
    settings = Settings(
        env="test", open_join=True, open_join_per_minute=4, joined_room_empty_timeout_s=1
    )
    redis = aioredis.from_url(redis_server.url, decode_responses=True)
    urls = {"sfu_url": sfu.url, "redis_url": redis_server.url}
    tag = uuid.uuid4().hex[:6]
    rooms = [f"oj-{tag}-{i}" for i in range(3)]
    kept = f"oj-{tag}-made"
    try:
        async with ControlInstance.running(settings, **urls) as control:
            auth = {"authorization": f"Bearer {admin(settings)}"}
            async with httpx.AsyncClient(base_url=control.http, timeout=10) as http:
                tokens = []
                for room in [*rooms, rooms[0]]:
                    r = await http.post("/api/dev/token", json={"room": room, "name": "Eve"})
                    assert r.status_code == 200, r.text
                    tokens.append(r.json()["token"])
                r = await http.post("/api/dev/token", json={"room": "one-more", "name": "Eve"})
                assert r.status_code == 429, r.text
                assert r.json()["error"]["code"] == "rate_limited"
                # Per client address: another one still gets a token.
                other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
                async with httpx.AsyncClient(transport=other, timeout=10) as http2:
                    r = await http2.post(
                        f"{control.http}/api/dev/token", json={"room": rooms[0], "name": "Bob"}
                    )
                    assert r.status_code == 200, r.text

                # A room made with POST /api/rooms stays; the joins' rooms go with their peers.
                r = await http.post("/api/rooms", json={"name": kept}, headers=auth)
                assert r.status_code == 201, r.text
                peers = [
                    await SignalingClient.connect(control.ws(room), tok)
                    for room, tok in zip(rooms, tokens, strict=False)
                ]
                peers.append(
                    await SignalingClient.connect(
                        control.ws(kept), participant(settings, "ann", kept)
                    )
                )
                for peer in peers:
                    await peer.request("join", {"displayName": "Eve"})
                listed = {r["name"] for r in (await http.get("/api/rooms", headers=auth)).json()}
                assert {*rooms, kept} <= listed
                for peer in peers:
                    await peer.request("leave")
                    await peer.close()
                async with asyncio.timeout(10):
                    while True:
                        listed = {
                            r["name"] for r in (await http.get("/api/rooms", headers=auth)).json()
                        }
                        if not listed & set(rooms):
                            break
                        await asyncio.sleep(0.2)
                assert kept in listed
                for room in rooms:
                    assert not await redis.sismember(keys.rooms(), room)
                    assert [k async for k in redis.scan_iter(f"{keys.room(room)}*")] == []
                    r = await http.get(f"/api/rooms/{room}", headers=auth)
                    assert r.status_code == 404, r.text
                assert await redis.exists(keys.room(kept))

                # A normal participant is still served, in a new room and in the kept one.
                for room in (rooms[0], kept):
                    alice = await SignalingClient.connect(
                        control.ws(room), participant(settings, "alice", room)
                    )
                    joined = await alice.request("join", {"displayName": "Alice"})
                    assert joined["roomId"] == room
                    await alice.close()
                await http.delete(f"/api/rooms/{kept}", headers=auth)
    finally:
        await redis.aclose()


@pytest.fixture
async def control_default(
    sfu: SfuProcess, redis_server: RedisServer
) -> AsyncIterator[ControlInstance]:
    async with ControlInstance.running(
        Settings(env="test"), sfu_url=sfu.url, redis_url=redis_server.url
    ) as c:
        yield c
