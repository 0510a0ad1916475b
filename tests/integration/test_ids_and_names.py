"""One validated type per id and name (issue 17 item 9): ids with `:` must not reach other
Redis keys, and odd room names on the WebSocket path get a close code, not a traceback."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from tests.support.control import ControlInstance, admin, participant, ws_close

pytestmark = pytest.mark.integration

BAD_ID = "0123456789abcdef:transcodes"  # would address rooms/..:recordings/<id>:transcodes


async def test_ids_with_a_colon_are_refused_on_every_recording_route(
    settings: Settings, control: ControlInstance
) -> None:
    room = f"ids-{uuid.uuid4().hex[:6]}"
    base = f"/api/rooms/{room}/recordings/{BAD_ID}"
    good = f"/api/rooms/{room}/recordings/{'0' * 16}"
    routes = [("GET", base), ("DELETE", base), ("POST", f"{base}/stop"),
              ("GET", f"{base}/file"), ("GET", f"{base}/transcodes"),
              ("POST", f"{base}/transcodes"),
              ("GET", f"{base}/transcodes/{BAD_ID}"),
              ("GET", f"{good}/transcodes/{BAD_ID}/file")]  # fmt: skip
    auth = {"Authorization": f"Bearer {admin(settings)}"}
    async with httpx.AsyncClient(base_url=control.http, headers=auth, timeout=10) as http:
        assert (await http.post("/api/rooms", json={"name": room})).status_code == 201
        for method, path in routes:
            r = await http.request(method, path, json={"format": "ogg-opus"})
            assert r.status_code == 422, (method, path, r.status_code, r.text)
            assert "16 hex" in r.text or "pattern" in r.text, r.text
        for name in ("..", ".hidden", "-x", "a" * 65, "sec:peers", "with space"):
            r = await http.post("/api/rooms", json={"name": name})
            assert r.status_code == 422, (name, r.status_code)


@pytest.mark.parametrize(
    "name", ["a" * 5000, "with%20space", "%E2%98%83", "sec:peers", "%2E%2E", ".x"]
)
async def test_odd_room_names_on_the_signaling_path_get_a_clear_close_code(
    settings: Settings, control: ControlInstance, name: str
) -> None:
    token = participant(settings, "mallory", "anything", room_create=True)
    code, reason = await ws_close(f"{control.ws(name)}?access_token={token}")
    assert code == 4400, (code, reason)
    assert "invalid room name" in reason
    room = f"ok-{uuid.uuid4().hex[:6]}"  # and a normal participant still joins
    sig = await SignalingClient.connect(control.ws(room), participant(settings, "alice", room))
    try:
        joined = await sig.request("join", {"displayName": "Alice"})
        assert joined["peerId"]
    finally:
        await sig.close()
