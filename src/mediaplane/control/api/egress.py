"""REST: egress (a room or a participant composited to a file, RTMP or HLS) and HLS serving."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Path, Query, status
from fastapi.responses import FileResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from mediaplane.control import hls_urls
from mediaplane.control.api.jobs import (
    RoomPath,
    add_job_routes,
    app_service,
    job_id_path,
    require_record,
)
from mediaplane.control.auth import PermissionDenied, TokenError, verify_token
from mediaplane.control.deps import PrincipalDep, SettingsDep, api_keys, bearer
from mediaplane.control.errors import InvalidState
from mediaplane.control.jobs.egress import EgressRecord, EgressRequest, EgressService

router = APIRouter(tags=["egress"])
HlsName = Path(pattern=r"^(playlist\.m3u8|segment[0-9]{5}\.ts)$")


egress_service = app_service("egress", EgressService)

Egress = Annotated[EgressService, Depends(egress_service)]


@router.post(
    "/api/rooms/{room}/egress", status_code=status.HTTP_202_ACCEPTED, response_model=EgressRecord
)
async def start_egress(
    body: EgressRequest, principal: PrincipalDep, service: Egress, room: str = RoomPath
) -> EgressRecord:
    """Composite the room (or one participant) to a file, RTMP or HLS (grant: room_record)."""
    principal.require_record(room)
    return await service.start(room, body)


add_job_routes(
    router, collection="egress", record=EgressRecord, service=egress_service,
    require=require_record, noun="egress",
)  # fmt: skip


@router.get("/api/rooms/{room}/egress/{egress_id}/file", response_class=FileResponse)
async def egress_file(
    principal: PrincipalDep, service: Egress, egress_id: str = job_id_path(), room: str = RoomPath
) -> FileResponse:
    """The file of a file egress (HTTP Range supported)."""
    principal.require_record(room)
    path = service.file_path(await service.get(room, egress_id))
    media = {".mp4": "video/mp4", ".webm": "video/webm", ".mkv": "video/x-matroska"}
    return FileResponse(path, media_type=media.get(path.suffix, "video/mp4"), filename=path.name)


class HlsUrl(BaseModel):
    url: str = Field(description="the playlist's path with `expires` and `sig`: no token in it")
    expires_at: int


@router.get("/api/rooms/{room}/egress/{egress_id}/hls-url", response_model=HlsUrl)
async def hls_url(
    principal: PrincipalDep,
    service: Egress,
    settings: SettingsDep,
    egress_id: str = job_id_path(),
    room: str = RoomPath,
) -> HlsUrl:
    """A signed playlist URL valid for MEDIAPLANE_HLS_URL_TTL_S (grant: hls_view,
    room_record or room_admin)."""
    principal.require_hls_view(room)
    rec = await service.get(room, egress_id)
    if rec.output != "hls":
        raise InvalidState(f"egress {egress_id} is not an HLS egress")
    signed = hls_urls.query(settings.secret("api_secret"), room, egress_id, settings.hls_url_ttl_s)
    expires = int(dict(parse_qsl(signed))["expires"])
    return HlsUrl(url=f"/api/rooms/{room}/egress/{egress_id}/hls/playlist.m3u8?{signed}",
                  expires_at=expires)  # fmt: skip


@router.get("/api/rooms/{room}/egress/{egress_id}/hls/{name}")
async def hls_file(
    settings: SettingsDep,
    service: Egress,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    egress_id: str = job_id_path(),
    room: str = RoomPath,
    name: str = HlsName,
    access_token: str | None = Query(default=None, max_length=4096),
    expires: int | None = Query(default=None, ge=0, le=2**40),
    sig: str | None = Query(default=None, pattern=r"^[0-9a-fA-F]{64}$"),
) -> Response:
    """The HLS playlist and segments of an hls egress, while it runs and after.

    Either a signed URL (`expires`, `sig`: GET .../hls-url) or a token with hls_view,
    room_record or room_admin for the room (Authorization header, or ?access_token= for
    players that cannot send headers). The playlist's segment URIs carry a signature,
    never the token."""
    secret = settings.secret("api_secret")
    if sig is not None or expires is not None:
        if sig is None or expires is None:
            raise PermissionDenied("a signed HLS URL needs both expires and sig")
        try:
            hls_urls.verify(secret, room, egress_id, expires, sig)
        except hls_urls.SignatureError as e:
            raise PermissionDenied(str(e)) from None
        signed = urlencode({"expires": expires, "sig": sig.lower()})
    else:
        token = creds.credentials if creds is not None else access_token
        if not token:
            raise TokenError("missing credentials: a signed URL (expires, sig) or a token")
        verify_token(token, api_keys(settings)).require_hls_view(room)
        signed = hls_urls.query(secret, room, egress_id, settings.hls_url_ttl_s)
    rec = await service.get(room, egress_id)
    path = service.hls_file(rec, name)
    if name.endswith(".m3u8"):
        # Segment URIs are relative: they carry the signature (segments inherit it).
        text = "\n".join(
            f"{line}?{signed}" if line and not line.startswith("#") else line
            for line in path.read_text().splitlines()
        )
        return Response(
            text, media_type="application/vnd.apple.mpegurl", headers={"Cache-Control": "no-cache"}
        )
    return FileResponse(path, media_type="video/mp2t")
