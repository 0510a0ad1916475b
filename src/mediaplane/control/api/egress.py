"""REST: egress (a room or a participant composited to a file, RTMP or HLS) and HLS serving."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mediaplane.control.auth import Principal, TokenError, verify_token
from mediaplane.control.deps import PrincipalDep, SettingsDep, api_keys, bearer
from mediaplane.control.jobs.egress import EgressRecord, EgressRequest, EgressService
from mediaplane.media.models import HlsWindow, RtmpUrl

router = APIRouter(tags=["egress"])
RoomName = Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
EgressId = Path(pattern=r"^[0-9a-f]{16}$")
HlsName = Path(pattern=r"^(playlist\.m3u8|segment[0-9]{5}\.ts)$")


def egress_service(request: Request) -> EgressService:
    service: EgressService = request.app.state.egress
    return service


Egress = Annotated[EgressService, Depends(egress_service)]


class StartEgress(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: Literal["room", "participant"] = Field(
        default="room", description="room: everyone, following joins and leaves"
    )
    identity: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    output: Literal["file", "rtmp", "hls"] = "file"
    format: Literal["mp4", "mkv", "webm"] = Field(
        default="mp4", description="file: mp4 (H264+AAC), mkv (H264+Opus), webm (VP8+Opus)"
    )
    rtmp_url: RtmpUrl | None = Field(default=None, alias="rtmpUrl")
    hls_window: HlsWindow = 0
    width: int = Field(default=1280, ge=160, le=1920, multiple_of=2)
    height: int = Field(default=720, ge=120, le=1080, multiple_of=2)
    fps: int = Field(default=30, ge=5, le=60)
    video_kbps: int = Field(default=2500, alias="videoKbps", ge=100, le=20000)
    audio_only: bool = Field(default=False, alias="audioOnly")

    @model_validator(mode="after")
    def _consistent(self) -> StartEgress:
        if (self.output == "rtmp") != (self.rtmp_url is not None):
            raise ValueError("rtmpUrl is required for output 'rtmp' and only for it")
        if self.hls_window and self.output != "hls":
            raise ValueError("hlsWindow is for output 'hls' only")
        if self.source == "participant" and self.identity is None:
            raise ValueError("source 'participant' needs an identity")
        return self


@router.post(
    "/api/rooms/{room}/egress", status_code=status.HTTP_202_ACCEPTED, response_model=EgressRecord
)
async def start_egress(
    body: StartEgress, principal: PrincipalDep, service: Egress, room: str = RoomName
) -> EgressRecord:
    """Composite the room (or one participant) to a file, RTMP or HLS (grant: room_record)."""
    principal.require_record(room)
    req = EgressRequest.model_validate(body.model_dump())
    return await service.start(room, req)


@router.get("/api/rooms/{room}/egress", response_model=list[EgressRecord])
async def list_room_egress(
    principal: PrincipalDep, service: Egress, room: str = RoomName
) -> list[EgressRecord]:
    principal.require_record(room)
    return await service.list_all(room)


@router.get("/api/egress", response_model=list[EgressRecord])
async def list_egress(
    principal: PrincipalDep,
    service: Egress,
    room: str | None = Query(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$"),
) -> list[EgressRecord]:
    """Every egress (grant: room_list)."""
    principal.require("room_list")
    return await service.list_all(room)


@router.get("/api/rooms/{room}/egress/{egress_id}", response_model=EgressRecord)
async def get_egress(
    principal: PrincipalDep, service: Egress, egress_id: str = EgressId, room: str = RoomName
) -> EgressRecord:
    principal.require_record(room)
    return await service.get(room, egress_id)


@router.post("/api/rooms/{room}/egress/{egress_id}/stop", response_model=EgressRecord)
async def stop_egress(
    principal: PrincipalDep, service: Egress, egress_id: str = EgressId, room: str = RoomName
) -> EgressRecord:
    principal.require_record(room)
    await service.get(room, egress_id)
    return await service.stop(egress_id, "stopped by request")


@router.get("/api/rooms/{room}/egress/{egress_id}/file", response_class=FileResponse)
async def egress_file(
    principal: PrincipalDep, service: Egress, egress_id: str = EgressId, room: str = RoomName
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
    egress_id: str = EgressId,
    room: str = RoomName,
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
