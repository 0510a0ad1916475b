"""The signaling WebSocket route: count, authenticate, then hand the socket to a PeerSession.

Every socket takes a slot of `app.state.ws_slots` (per client address, and in all)
before anything else and gives it back when it closes, however it closes; one over a
cap is closed with CLOSE_TOO_MANY. The client address is the one uvicorn reports:
behind a proxy that uvicorn does not trust for X-Forwarded-For, the proxy's.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket

from mediaplane.control.auth import TokenError, verify_token
from mediaplane.control.deps import api_keys
from mediaplane.control.errors import LimitExceeded
from mediaplane.control.limits import Slots
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
CLOSE_TOO_MANY = 4429


def socket_slots(settings: Settings) -> Slots:
    return Slots(
        "signaling connections", per_key=settings.ws_max_connections_per_address,
        per="per client address", key_setting="WS_MAX_CONNECTIONS_PER_ADDRESS",
        total=settings.ws_max_connections, total_setting="WS_MAX_CONNECTIONS",
    )  # fmt: skip


@router.websocket("/ws/rooms/{room}")
async def signaling(ws: WebSocket, room: str) -> None:
    """Browsers cannot set headers on a WebSocket: the token comes as `access_token`."""
    settings: Settings = ws.app.state.settings
    rooms: RoomManager = ws.app.state.rooms
    slots: Slots = ws.app.state.ws_slots
    address = ws.client.host if ws.client else "unknown"
    await ws.accept()
    try:
        slot = slots.take(address)
    except LimitExceeded as e:
        log.info("signaling socket refused address=%s: %s", address, e.message)
        await ws.close(code=CLOSE_TOO_MANY, reason=e.message[:120])
        return
    try:
        await _serve(ws, room, settings, rooms)
    finally:
        slot.release()


async def _serve(ws: WebSocket, room: str, settings: Settings, rooms: RoomManager) -> None:
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
        ws, rooms, principal, room, transport_watch=ws.app.state.transport_watch,
        max_message_bytes=settings.signaling_max_message_bytes,
        ice_servers=lambda identity: ice_servers(settings, identity),
    )  # fmt: skip
    await session.run()
