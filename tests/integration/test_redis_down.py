"""Every route answers JSON while Redis is down, and none shows where Redis is (issue 17
item 8). Found: 12 routes (recordings, egress, injections, webhooks, sfu nodes) answered a
plain-text 500, and the others' 503 message carried the Redis address. The routes are
enumerated from the app itself, so a new route is covered without touching this test; the
control plane runs as its own process at INFO, and its log is checked too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute
from websockets.asyncio.client import connect

from mediaplane.control.app import create_app
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.integration.test_whip_errors import offer_sdp
from tests.support.control import control_process, participant, token

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

HEX = "0123456789abcdef"
# A well-formed value for each path parameter (a malformed one is a 422 before any
# Redis call); an unknown name gets "x", which its pattern may refuse: still a 4xx.
PARAMS = {"room": "", "identity": "alice", "producer_id": HEX, "job_id": HEX,
          "rec_id": HEX, "transcode_id": HEX, "egress_id": HEX, "name": "playlist.m3u8",
          "session_id": "a" * 32}  # fmt: skip
# A valid body for each body model (by class name); others get {}, a 422 at worst.
BODIES: dict[str, Any] = {
    "TokenRequest": {"identity": "bob", "grants": {"room": "r", "room_join": True}},
    "RoomCreate": {"name": "another-room"},
    "RoomUpdate": {"max_participants": 10},
    "MuteRequest": {"muted": True},
    "GrantsUpdate": {"grants": {"room_join": True}},
    "StartRecording": {"mode": "room"},
    "StartTranscode": {"format": "ogg-opus"},
    "EgressRequest": {"source": "room", "output": "file"},
    "InjectionRequest": {"source": "media/intro.mp4"},
    "JoinRequest": {"room": "r", "name": "bob"},
}
NOT_FOR_REDIS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
READINESS = {"/readyz"}  # its 503 is its readiness report ({"status": "not ready", ...})


def routes(items: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route of the app, through included routers."""
    for route in items:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from routes(included.routes)
        else:
            yield route


def all_routes() -> tuple[list[tuple[str, APIRoute]], list[APIWebSocketRoute]]:
    app = create_app(Settings(env="test"), sfu_url="ws://127.0.0.1:1/rpc", redis_url="redis://x")
    http = [(m, r) for r in routes(app.routes) if isinstance(r, APIRoute) for m in r.methods]
    ws = [r for r in routes(app.routes) if isinstance(r, APIWebSocketRoute)]
    return sorted(http, key=lambda mr: (mr[1].path, mr[0])), ws


def request_for(method: str, route: APIRoute, room: str, offer: str) -> dict[str, Any]:
    path = route.path_format.format(**{p.name: PARAMS.get(p.name, "x") or room
                                       for p in route.dependant.path_params})  # fmt: skip
    if route.path.startswith(("/whip/rooms", "/whep/rooms")):
        return {"url": path, "content": offer, "headers": {"Content-Type": "application/sdp"}}
    if route.path.startswith(("/whip/sessions", "/whep/sessions")) and method == "PATCH":
        frag = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\n"
        return {"url": path, "content": frag,
                "headers": {"Content-Type": "application/trickle-ice-sdpfrag"}}  # fmt: skip
    if route.body_field is not None:
        model = route.body_field.field_info.annotation
        return {"url": path, "json": BODIES.get(getattr(model, "__name__", ""), {})}
    return {"url": path}


def leaks(text: str, redis: RedisServer) -> list[str]:
    """What of Redis's whereabouts `text` shows."""
    found = [s for s in (f"{redis.host}:{redis.port}", str(redis.port)) if s in text]
    if redis.password and redis.password in text:
        found.append("the password")
    return found


async def wait_ok(http: httpx.AsyncClient, url: str, timeout: float = 20) -> httpx.Response:
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(httpx.TransportError):
                r = await http.get(url)
                if r.status_code == 200:
                    return r
            await asyncio.sleep(0.2)


async def test_every_route_answers_json_without_the_redis_address_while_redis_is_down(
    settings: Settings, sfu: SfuProcess, tmp_path: Path
) -> None:
    redis = await RedisServer.start(tmp_path / "redis")
    room = f"down-{uuid.uuid4().hex[:6]}"
    boss = token(settings, "boss", room=room, room_join=True, room_admin=True,
                 room_create=True, room_list=True, room_record=True)  # fmt: skip
    auth = {"Authorization": f"Bearer {boss}"}
    http_routes, ws_routes = all_routes()
    assert len(http_routes) > 40 and ws_routes  # the enumeration found the app's routes
    offer = await offer_sdp()
    answers: list[tuple[str, str, int, str]] = []
    async with control_process(
        sfu.port, redis.url, tmp_path / "control.log", MEDIAPLANE_LOG_LEVEL="INFO"
    ) as control:
        async with httpx.AsyncClient(base_url=control.http, headers=auth, timeout=15) as http:
            assert (await http.post("/api/rooms", json={"name": room})).status_code == 201
            await redis.stop()
            for method, route in http_routes:
                if route.path in NOT_FOR_REDIS:
                    continue
                try:
                    r = await http.request(method, **request_for(method, route, room, offer))
                except httpx.TransportError as e:  # e.g. the connection cut after a 500
                    answers.append((method, route.path, 599, f"no answer: {e!r}"))
                    continue
                answers.append((method, route.path, r.status_code, r.text))
            for ws_route in ws_routes:  # the signaling socket: join is refused, with a code
                path = ws_route.path_format.format(room=room)
                url = f"ws://127.0.0.1:{control.port}{path}?access_token={boss}"
                async with connect(url, open_timeout=5) as ws:
                    await ws.send(json.dumps({"id": 1, "method": "join", "data": {}}))
                    text = str(await asyncio.wait_for(ws.recv(), 15))
                answers.append(("WS", ws_route.path, 0, text))
                reply = json.loads(text)
                assert reply["error"]["code"] == "unavailable", reply

            problems = []
            for method, path, status, text in answers:
                if status >= 500 and status != 503:
                    problems.append(f"{method} {path}: {status} {text[:120]}")
                if status >= 400 and path not in READINESS:
                    try:
                        body = json.loads(text)
                        assert body["error"]["code"] and body["error"]["message"]
                    except (ValueError, KeyError, TypeError, AssertionError):
                        problems.append(f"{method} {path}: {status} not a JSON error: {text[:80]}")
                if where := leaks(text, redis):
                    problems.append(f"{method} {path}: {status} shows {where}: {text[:120]}")
            statuses = Counter(status for _, _, status, _ in answers)
            log.info("measured: %d routes with Redis down: %s", len(answers), dict(statuses))
            for method, path, status, text in answers:
                if status != 503:
                    log.info("not 503: %s %s %s %s", method, path, status, text[:100])
            assert not problems, "\n".join(problems)
            assert statuses[503] >= 30, statuses  # most routes need Redis: they said so

            # Redis back (same port and password, its data kept): served again.
            redis = await RedisServer.start(redis.data_dir, port=redis.port,
                                            password=redis.password)  # fmt: skip
            r = await wait_ok(http, f"/api/rooms/{room}")
            assert r.json()["name"] == room
        sig = await SignalingClient.connect(control.ws(room), participant(settings, "alice", room))
        try:
            assert (await sig.request("join", {}))["peerId"]
        finally:
            await sig.close()
    await redis.stop()
    text = control.log.read_text()
    assert boss not in text and boss.split(".")[1] not in text  # tokens never logged
    assert redis.password is not None and redis.password not in text
    refusals = [ln for ln in text.splitlines() if "Redis" in ln and "unavailable" in ln]
    assert refusals, text[-2000:]
    assert not [ln for ln in refusals if leaks(ln, redis)], refusals[:5]
