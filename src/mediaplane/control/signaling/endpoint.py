"""The signaling WebSocket route: authenticate, then hand the socket to a PeerSession."""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket

from mediaplane.control.auth import TokenError, verify_token
from mediaplane.control.deps import api_keys
from mediaplane.control.rooms import RoomManager
from mediaplane.control.signaling.session import PeerSession
from mediaplane.settings import Settings
from mediaplane.turn.credentials import ice_servers
from mediaplane.wire.ids import NAME

log = logging.getLogger(__name__)
router = APIRouter()

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403


@router.websocket("/ws/rooms/{room}")
async def signaling(ws: WebSocket, room: str) -> None:
    """Browsers cannot set headers on a WebSocket: the token comes as `access_token`."""
    settings: Settings = ws.app.state.settings
    rooms: RoomManager = ws.app.state.rooms
    await ws.accept()
    if not NAME.match(room):
        await ws.close(
            code=CLOSE_BAD_REQUEST, reason="invalid room name: 1-64 of A-Z a-z 0-9 _ . -"
        )
        return
    token = ws.query_params.get("access_token", "")
    try:
        principal = verify_token(token, api_keys(settings))
    except TokenError as e:
        await ws.close(code=CLOSE_UNAUTHORIZED, reason=str(e)[:120])
        return
    if principal.grants.room != room and not principal.grants.room_create:
        await ws.close(code=CLOSE_FORBIDDEN, reason=f"token is not valid for room {room!r}"[:120])
        return
    session = PeerSession(
        ws, rooms, principal, room,
        transport_watch=ws.app.state.transport_watch,
        ice_servers=lambda identity: ice_servers(settings, identity),
    )  # fmt: skip
    await session.run()
