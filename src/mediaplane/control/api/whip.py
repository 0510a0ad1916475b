"""HTTP for WHIP (RFC 9725) and WHEP: POST an offer, PATCH trickle/restart, DELETE.

    POST   /whip/rooms/{room}                          publish into a room
    POST   /whep/rooms/{room}/participants/{identity}  play a participant's tracks
    PATCH  /whip/sessions/{id}, /whep/sessions/{id}    trickle ICE / ICE restart
    DELETE /whip/sessions/{id}, /whep/sessions/{id}    end the session
    OPTIONS on all of them                             CORS preflight (WhipCors)

Errors keep the control plane's JSON error body (api/errors.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediaplane.control.deps import PrincipalDep
from mediaplane.control.errors import ControlError
from mediaplane.control.whip.links import ice_server_links
from mediaplane.control.whip.sdp import MAX_SDP_BYTES
from mediaplane.control.whip.service import WhipService
from mediaplane.control.whip.session import Kind, MediaSession
from mediaplane.settings import Settings
from mediaplane.turn.credentials import ice_servers
from mediaplane.wire.ids import NAME_PATTERN

router = APIRouter(tags=["whip"])
SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"


class UnsupportedMediaType(ControlError):
    status = 415
    code = "unsupported_media_type"


class TooLarge(ControlError):
    status = 413
    code = "too_large"


def whip_service(request: Request) -> WhipService:
    service: WhipService = request.app.state.whip
    return service


Whip = Annotated[WhipService, Depends(whip_service)]
Room = Annotated[str, Path(pattern=NAME_PATTERN)]
Identity = Annotated[str, Path(pattern=NAME_PATTERN)]
SessionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


async def read_body(request: Request, content_type: str) -> str:
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given != content_type:
        raise UnsupportedMediaType(f"Content-Type must be {content_type} (got {given or 'none'})")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_SDP_BYTES:
            raise TooLarge(f"the body is larger than {MAX_SDP_BYTES} bytes")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode()
    except UnicodeDecodeError:
        raise UnsupportedMediaType("the body is not UTF-8 text") from None


def client_address(request: Request) -> str:
    """As uvicorn reports it (behind an untrusted proxy: the proxy's)."""
    return request.client.host if request.client else "unknown"


def created(request: Request, session: MediaSession, answer: str) -> Response:
    """201 with the answer, the session's URL and (RFC 9725 4.6) the TURN servers the
    client may use, with credentials minted for this session's identity."""
    settings: Settings = request.app.state.settings
    response = Response(
        answer,
        status_code=201,
        media_type=SDP,
        headers={
            "Location": f"/{session.kind}/sessions/{session.session_id}",
            "ETag": session.etag,
            "Accept-Patch": SDPFRAG,
        },
    )
    for link in ice_server_links(ice_servers(settings, session.peer.identity)):
        response.headers.append("Link", link)
    return response


@router.post("/whip/rooms/{room}", status_code=201, response_class=Response)
async def whip_publish(
    request: Request, room: Room, principal: PrincipalDep, whip: Whip
) -> Response:
    """WHIP: publish an SDP offer's tracks as a participant of `room` (room_join + can_publish)."""
    session, answer = await whip.publish(
        room, principal, await read_body(request, SDP), address=client_address(request)
    )
    return created(request, session, answer)


@router.post("/whep/rooms/{room}/participants/{identity}", status_code=201, response_class=Response)
async def whep_play(
    request: Request, room: Room, identity: Identity, principal: PrincipalDep, whip: Whip
) -> Response:
    """WHEP: receive a participant's tracks (room_join + can_subscribe)."""
    body = await read_body(request, SDP)
    session, answer = await whip.play(
        room, identity, principal, body, address=client_address(request)
    )
    return created(request, session, answer)


async def _patch(
    kind: Kind, request: Request, session_id: str, principal: PrincipalDep, whip: WhipService,
    if_match: str | None,
) -> Response:  # fmt: skip
    body = await read_body(request, SDPFRAG)
    session, fragment = await whip.patch(kind, session_id, principal, body, if_match)
    if fragment is None:
        return Response(status_code=204)
    return Response(fragment, status_code=200, media_type=SDPFRAG, headers={"ETag": session.etag})


@router.patch("/whip/sessions/{session_id}", response_class=Response)
async def whip_patch(
    request: Request, session_id: SessionId, principal: PrincipalDep, whip: Whip,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:  # fmt: skip
    """Trickle ICE candidates (204) or an ICE restart (200 with the new sdpfrag)."""
    return await _patch("whip", request, session_id, principal, whip, if_match)


@router.patch("/whep/sessions/{session_id}", response_class=Response)
async def whep_patch(
    request: Request, session_id: SessionId, principal: PrincipalDep, whip: Whip,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:  # fmt: skip
    """Trickle ICE candidates (204) or an ICE restart (200 with the new sdpfrag)."""
    return await _patch("whep", request, session_id, principal, whip, if_match)


@router.delete("/whip/sessions/{session_id}", response_class=Response)
async def whip_delete(session_id: SessionId, principal: PrincipalDep, whip: Whip) -> Response:
    """End the WHIP session: its tracks close and the participant leaves."""
    await whip.delete("whip", session_id, principal)
    return Response(status_code=200)


@router.delete("/whep/sessions/{session_id}", response_class=Response)
async def whep_delete(session_id: SessionId, principal: PrincipalDep, whip: Whip) -> Response:
    """End the WHEP session."""
    await whip.delete("whep", session_id, principal)
    return Response(status_code=200)


class WhipCors:
    """CORS for /whip and /whep (browser clients): preflight answers and headers on replies."""

    HEADERS = [
        (b"access-control-allow-origin", b"*"),
        (b"access-control-expose-headers", b"Location, ETag, Link, Accept-Patch, Accept-Post"),
    ]
    PREFLIGHT = [
        (b"access-control-allow-methods", b"POST, PATCH, DELETE, OPTIONS"),
        (b"access-control-allow-headers", b"Authorization, Content-Type, If-Match"),
        (b"access-control-max-age", b"600"),
        (b"accept-post", SDP.encode()),
        (b"accept-patch", SDPFRAG.encode()),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(("/whip/", "/whep/")):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send(
                {"type": "http.response.start", "status": 204,
                 "headers": self.HEADERS + self.PREFLIGHT}
            )  # fmt: skip
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), *self.HEADERS])
            await send(message)

        await self.app(scope, receive, with_cors)
