"""A grant update gives only what the caller holds (issue 17 item 10): a room's admin
could hand a participant room_create and room_list through PUT .../grants."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from tests.support.control import ControlInstance, admin, participant

pytestmark = pytest.mark.integration


async def test_a_room_admin_cannot_grant_server_wide_grants(
    settings: Settings, control: ControlInstance
) -> None:
    room = f"grants-{uuid.uuid4().hex[:6]}"
    room_admin = participant(settings, "boss", room, room_admin=True)
    alice = await SignalingClient.connect(control.ws(room), participant(settings, "alice", room))
    try:
        await alice.request("join", {"displayName": "Alice"})
        url = f"/api/rooms/{room}/participants/alice/grants"
        async with httpx.AsyncClient(base_url=control.http, timeout=10) as http:
            as_room_admin = {"authorization": f"Bearer {room_admin}"}
            everything = {"room_join": True, "room_create": True, "room_list": True}
            for grants in ({"room_create": True}, {"room_list": True}, everything):
                r = await http.put(url, json={"grants": grants}, headers=as_room_admin)
                assert r.status_code == 403, (grants, r.text)
                body = r.json()["error"]
                assert body["code"] == "forbidden" and "cannot grant" in body["message"], body
            # What the room admin holds for its room it may still give.
            grants = {"room_join": True, "room_record": True, "can_publish": False}
            r = await http.put(url, json={"grants": grants}, headers=as_room_admin)
            assert r.status_code == 204, r.text
            event = await alice.wait_event("permissionsUpdated")
            assert event["grants"]["room_record"] is True
            assert event["grants"]["room_create"] is False
            # A caller holding the server-wide grants (the API key's admin) still can.
            as_admin = {"authorization": f"Bearer {admin(settings)}"}
            r = await http.put(
                url, json={"grants": {"room_join": True, "room_list": True}}, headers=as_admin
            )
            assert r.status_code == 204, r.text
            event = await alice.wait_event(
                "permissionsUpdated", lambda d: d["grants"]["room_list"] is True
            )
        # The participant is still served.
        transport = await alice.create_webrtc_transport("recv")
        assert transport["transportId"]
    finally:
        await alice.close()
