"""REST: recordings of participants, the catalog, downloads, webhook deliveries."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from mediaplane.control.api.jobs import (
    RoomPath,
    add_job_routes,
    app_service,
    job_id_path,
    require_record,
)
from mediaplane.control.deps import PrincipalDep
from mediaplane.control.errors import InvalidState
from mediaplane.control.jobs.recordings import RecordingRecord, RecordingService
from mediaplane.control.jobs.transcodes import TranscodeFormat, TranscodeRecord, TranscodeService
from mediaplane.media.models import JobState
from mediaplane.wire.ids import NAME_PATTERN

# Shared by every route, each always named so (FastAPI names a Path after its parameter).
RecId = job_id_path()
TranscodeId = job_id_path()
router = APIRouter(tags=["recordings"])


recordings = app_service("recordings", RecordingService)

Recordings = Annotated[RecordingService, Depends(recordings)]


class StartRecording(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identity: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="the participant to record"
    )
    audio: bool = True
    video: bool = True
    mode: Literal["participant", "room"] = Field(
        default="participant", description="room: every participant, following joins and leaves"
    )
    layout: Literal["muxed", "per_track"] = Field(
        default="muxed", description="one file per participant (muxed) or one per track"
    )


@router.post(
    "/api/rooms/{room}/recordings",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RecordingRecord,
)
async def start_recording(
    body: StartRecording, principal: PrincipalDep, service: Recordings, room: str = RoomPath
) -> RecordingRecord:
    """Record a participant's tracks into one file (grant: room_record or room_admin)."""
    principal.require_record(room)
    if body.mode == "participant" and body.layout == "muxed":
        if body.identity is None:
            raise InvalidState("give the identity to record, or mode 'room'")
        return await service.start(room, body.identity, audio=body.audio, video=body.video)
    return await service.start_group(
        room, body.identity, audio=body.audio, video=body.video, mode=body.mode, layout=body.layout
    )


@router.get("/api/rooms/{room}/recordings", response_model=list[RecordingRecord])
async def list_room_recordings(
    principal: PrincipalDep,
    service: Recordings,
    room: str = RoomPath,
    identity: str | None = Query(default=None, max_length=64),
    state: JobState | None = None,
    since: float | None = Query(default=None, description="requested at or after (unix s)"),
    until: float | None = Query(default=None, description="requested at or before (unix s)"),
) -> list[RecordingRecord]:
    principal.require_record(room)
    return await service.list(room, identity, state, since, until)


@router.get("/api/recordings", response_model=list[RecordingRecord])
async def catalog(
    principal: PrincipalDep,
    service: Recordings,
    room: str | None = Query(default=None, max_length=64),
    identity: str | None = Query(default=None, max_length=64),
    state: JobState | None = None,
    since: float | None = None,
    until: float | None = None,
) -> list[RecordingRecord]:
    """Every recording (grant: room_list)."""
    principal.require("room_list")
    return await service.list(room, identity, state, since, until)


add_job_routes(
    router, collection="recordings", record=RecordingRecord, service=recordings,
    require=require_record, noun="recording", id_path=job_id_path(), lists=False,
)  # fmt: skip


@router.get("/api/rooms/{room}/recordings/{rec_id}/file", response_class=FileResponse)
async def download(
    principal: PrincipalDep, service: Recordings, rec_id: str = RecId, room: str = RoomPath
) -> FileResponse:
    """The file (HTTP Range supported)."""
    principal.require_record(room)
    rec = await service.get(room, rec_id)
    path = service.file_path(rec)
    media = {".ogg": "audio/ogg", ".webm": "video/webm", ".mkv": "video/x-matroska"}
    return FileResponse(
        path, media_type=media.get(path.suffix, "application/octet-stream"), filename=path.name
    )


@router.delete("/api/rooms/{room}/recordings/{rec_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_recording(
    request: Request,
    principal: PrincipalDep,
    service: Recordings,
    rec_id: str = RecId,
    room: str = RoomPath,
) -> None:
    """Delete the file, its transcodes and the record (grant: room_record or room_admin)."""
    principal.require_record(room)
    await transcodes(request).delete_of(room, rec_id)  # 409 while one runs
    await service.delete(room, rec_id)


@router.get("/api/webhooks/deliveries")
async def deliveries(
    principal: PrincipalDep, service: Recordings, limit: int = Query(default=100, ge=1, le=1000)
) -> list[dict[str, Any]]:
    """The webhook delivery log, newest first (grant: room_create)."""
    principal.require("room_create")
    return await service.webhooks.deliveries(limit)


# transcodes ------------------------------------------------------------------------
transcodes = app_service("transcodes", TranscodeService)

Transcodes = Annotated[TranscodeService, Depends(transcodes)]


class StartTranscode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: TranscodeFormat = Field(description="the container and codecs of the new file")


@router.post(
    "/api/rooms/{room}/recordings/{rec_id}/transcodes",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TranscodeRecord,
)
async def start_transcode(
    body: StartTranscode,
    principal: PrincipalDep,
    service: Transcodes,
    rec_id: str = RecId,
    room: str = RoomPath,
) -> TranscodeRecord:
    """Transcode a completed recording into a new file (grant: room_record or room_admin)."""
    principal.require_record(room)
    return await service.start(room, rec_id, body.format)


@router.get(
    "/api/rooms/{room}/recordings/{rec_id}/transcodes", response_model=list[TranscodeRecord]
)
async def list_transcodes(
    principal: PrincipalDep, service: Transcodes, rec_id: str = RecId, room: str = RoomPath
) -> list[TranscodeRecord]:
    principal.require_record(room)
    return await service.list(room, rec_id)


@router.get(
    "/api/rooms/{room}/recordings/{rec_id}/transcodes/{transcode_id}",
    response_model=TranscodeRecord,
)
async def get_transcode(
    principal: PrincipalDep,
    service: Transcodes,
    rec_id: str = RecId,
    transcode_id: str = TranscodeId,
    room: str = RoomPath,
) -> TranscodeRecord:
    principal.require_record(room)
    return await service.get(room, rec_id, transcode_id)


@router.get(
    "/api/rooms/{room}/recordings/{rec_id}/transcodes/{transcode_id}/file",
    response_class=FileResponse,
)
async def download_transcode(
    principal: PrincipalDep,
    service: Transcodes,
    rec_id: str = RecId,
    transcode_id: str = TranscodeId,
    room: str = RoomPath,
) -> FileResponse:
    """The transcoded file (HTTP Range supported)."""
    principal.require_record(room)
    path = service.file_path(await service.get(room, rec_id, transcode_id))
    media = {".ogg": "audio/ogg", ".webm": "video/webm", ".mp4": "video/mp4"}
    return FileResponse(
        path, media_type=media.get(path.suffix, "application/octet-stream"), filename=path.name
    )
