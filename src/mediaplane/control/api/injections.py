"""REST: injections (a file or a URL played into a room as a participant)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mediaplane.control.deps import PrincipalDep
from mediaplane.control.jobs.injections import InjectionRecord, InjectionRequest, InjectionService

router = APIRouter(tags=["injections"])
RoomName = Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
InjectionId = Path(pattern=r"^[0-9a-f]{16}$")


def injection_service(request: Request) -> InjectionService:
    service: InjectionService = request.app.state.injections
    return service


Injections = Annotated[InjectionService, Depends(injection_service)]


class StartInjection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1,
        max_length=2048,
        description="a file under the media root (e.g. `media/intro.mp4`), or a URL: "
        "http(s):// file or HLS playlist (.m3u8), rtmp(s)://, rtsp(s)://",
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=64, description="the participant name others see"
    )
    audio: bool = True
    video: bool = True
    loop: bool = Field(default=False, description="start again at the end (files, HTTP files)")

    @model_validator(mode="after")
    def _kinds(self) -> StartInjection:
        if not (self.audio or self.video):
            raise ValueError("inject audio, video or both")
        if self.name is not None and any(ord(c) < 32 for c in self.name):
            raise ValueError("name must not contain control characters")
        return self


@router.post(
    "/api/rooms/{room}/injections",
    status_code=status.HTTP_201_CREATED,
    response_model=InjectionRecord,
)
async def start_injection(
    body: StartInjection, principal: PrincipalDep, service: Injections, room: str = RoomName
) -> InjectionRecord:
    """Play a file or a URL into the room as a participant (grant: room_admin)."""
    principal.require_room_admin(room)
    return await service.start(room, InjectionRequest.model_validate(body.model_dump()))


@router.get("/api/rooms/{room}/injections", response_model=list[InjectionRecord])
async def list_room_injections(
    principal: PrincipalDep, service: Injections, room: str = RoomName
) -> list[InjectionRecord]:
    principal.require_room_admin(room)
    return await service.list_all(room)


@router.get("/api/injections", response_model=list[InjectionRecord])
async def list_injections(
    principal: PrincipalDep,
    service: Injections,
    room: str | None = Query(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$"),
) -> list[InjectionRecord]:
    """Every injection (grant: room_list)."""
    principal.require("room_list")
    return await service.list_all(room)


@router.get("/api/rooms/{room}/injections/{injection_id}", response_model=InjectionRecord)
async def get_injection(
    principal: PrincipalDep,
    service: Injections,
    injection_id: str = InjectionId,
    room: str = RoomName,
) -> InjectionRecord:
    principal.require_room_admin(room)
    return await service.get(room, injection_id)


@router.post("/api/rooms/{room}/injections/{injection_id}/stop", response_model=InjectionRecord)
async def stop_injection(
    principal: PrincipalDep,
    service: Injections,
    injection_id: str = InjectionId,
    room: str = RoomName,
) -> InjectionRecord:
    """Stop playing; the injection's participant leaves (producerClosed, peerLeft)."""
    principal.require_room_admin(room)
    await service.get(room, injection_id)
    return await service.stop(injection_id, "stopped by request")
