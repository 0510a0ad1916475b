"""REST: injections (a file or a URL played into a room as a participant)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from mediaplane.control.api.jobs import RoomPath, add_job_routes, app_service, require_room_admin
from mediaplane.control.deps import PrincipalDep
from mediaplane.control.jobs.injections import InjectionRecord, InjectionRequest, InjectionService

router = APIRouter(tags=["injections"])


injection_service = app_service("injections", InjectionService)

Injections = Annotated[InjectionService, Depends(injection_service)]


@router.post(
    "/api/rooms/{room}/injections",
    status_code=status.HTTP_201_CREATED,
    response_model=InjectionRecord,
)
async def start_injection(
    body: InjectionRequest, principal: PrincipalDep, service: Injections, room: str = RoomPath
) -> InjectionRecord:
    """Play a file or a URL into the room as a participant (grant: room_admin)."""
    principal.require_room_admin(room)
    return await service.start(room, body)


add_job_routes(
    router, collection="injections", record=InjectionRecord, service=injection_service,
    require=require_room_admin, noun="injection",
    stop_doc="Stop playing; the injection's participant leaves (producerClosed, peerLeft).",
)  # fmt: skip
