"""REST: egress (a room or a participant composited to a file, RTMP or HLS) and HLS serving."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, status
from fastapi.responses import FileResponse, Response

from mediaplane.control.api.jobs import (
    RoomPath,
    add_job_routes,
    app_service,
    job_id_path,
    require_record,
)
from mediaplane.control.auth import Principal, TokenError, verify_token
from mediaplane.control.deps import PrincipalDep, SettingsDep, api_keys, bearer
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


def hls_principal(
    settings: SettingsDep,
    creds: Annotated[object, Depends(bearer)],
    access_token: str | None = Query(default=None, max_length=4096),
) -> Principal:
    """HLS players cannot always send headers: the token may come as ?access_token=."""
    token = getattr(creds, "credentials", None) or access_token
    if not token:
        raise TokenError("missing bearer token (header or access_token)")
    return verify_token(token, api_keys(settings))


@router.get("/api/rooms/{room}/egress/{egress_id}/hls/{name}")
async def hls_file(
    principal: Annotated[Principal, Depends(hls_principal)],
    service: Egress,
    egress_id: str = job_id_path(),
    room: str = RoomPath,
    name: str = HlsName,
    access_token: str | None = Query(default=None, max_length=4096),
) -> Response:
    """The HLS playlist and segments of an hls egress, while it runs and after."""
    principal.require_room(room)
    rec = await service.get(room, egress_id)
    path = service.hls_file(rec, name)
    if name.endswith(".m3u8"):
        text = path.read_text()
        if access_token:
            # Segment URIs are relative: they must carry the token too.
            suffix = "?" + urlencode({"access_token": access_token})
            text = "\n".join(
                line + suffix if line and not line.startswith("#") else line
                for line in text.splitlines()
            )
        return Response(
            text, media_type="application/vnd.apple.mpegurl", headers={"Cache-Control": "no-cache"}
        )
    return FileResponse(path, media_type="video/mp2t")
