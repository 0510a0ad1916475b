"""REST: the shape every job kind's routes share (recordings, egress, injections).

    GET  /api/{collection}?room=            every one (grant: room_list)
    GET  /api/rooms/{room}/{collection}     a room's (the kind's grant)
    GET  /api/rooms/{room}/{collection}/{id}
    POST /api/rooms/{room}/{collection}/{id}/stop

A kind's router adds its start route (its own body) and what is particular to it
(files, HLS, transcodes) and calls `add_job_routes` for the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from fastapi import APIRouter, Path, Query, Request

from mediaplane.control.auth import Principal
from mediaplane.control.deps import PrincipalDep
from mediaplane.control.jobs.lifecycle import JobRecord, JobService
from mediaplane.wire.ids import JOB_ID_PATTERN, NAME_PATTERN

RoomPath = Path(pattern=NAME_PATTERN, description="room name")  # every use names it `room`


def job_id_path() -> Any:
    """A job id path parameter (one per use: FastAPI names it after its parameter)."""
    return Path(pattern=JOB_ID_PATTERN, description="job id (16 hex digits)")


RoomFilter = Query(default=None, pattern=NAME_PATTERN, description="only this room's")

T = TypeVar("T")
Service = Callable[[Request], JobService[Any]]
Require = Callable[[Principal, str], None]


def app_service(attr: str, kind: type[T]) -> Callable[[Request], T]:
    """A dependency: the app's service of that kind (`app.state.<attr>`, set by app.py)."""

    def service(request: Request) -> T:
        return cast(T, getattr(request.app.state, attr))

    service.__name__ = f"{attr}_service"
    return service


def add_job_routes(
    router: APIRouter,
    *,
    collection: str,
    record: type[JobRecord],
    service: Service,
    require: Require,
    noun: str,
    id_path: Any = None,
    lists: bool = True,
    stop_doc: str = "",
) -> None:
    """The list, get and stop routes of one kind on `router`."""
    room_url = f"/api/rooms/{{room}}/{collection}"
    id_path = id_path or job_id_path()
    many: Any = list[record]  # type: ignore[valid-type]

    if lists:

        async def list_room(
            principal: PrincipalDep, request: Request, room: str = RoomPath
        ) -> list[Any]:
            require(principal, room)
            return await service(request).list_all(room)

        async def list_every(
            principal: PrincipalDep, request: Request, room: str | None = RoomFilter
        ) -> list[Any]:
            principal.require("room_list")
            return await service(request).list_all(room)

        router.add_api_route(
            room_url, list_room, methods=["GET"], response_model=many,
            name=f"list_room_{collection}", summary=f"List a room's {noun}s",
        )  # fmt: skip
        router.add_api_route(
            f"/api/{collection}", list_every, methods=["GET"], response_model=many,
            name=f"list_{collection}", summary=f"List every {noun} (grant: room_list)",
        )  # fmt: skip

    async def get_one(
        principal: PrincipalDep, request: Request, job_id: str = id_path, room: str = RoomPath
    ) -> Any:
        require(principal, room)
        return await service(request).get(room, job_id)

    async def stop_one(
        principal: PrincipalDep, request: Request, job_id: str = id_path, room: str = RoomPath
    ) -> Any:
        require(principal, room)
        jobs = service(request)
        await jobs.get(room, job_id)  # 404 for another room's
        return await jobs.stop(job_id, "stopped by request")

    router.add_api_route(
        f"{room_url}/{{job_id}}", get_one, methods=["GET"], response_model=record,
        name=f"get_{noun}", summary=f"Get a {noun}",
    )  # fmt: skip
    router.add_api_route(
        f"{room_url}/{{job_id}}/stop", stop_one, methods=["POST"], response_model=record,
        name=f"stop_{noun}", summary=f"Stop a {noun}", description=stop_doc,
    )  # fmt: skip


def require_record(principal: Principal, room: str) -> None:
    principal.require_record(room)


def require_room_admin(principal: Principal, room: str) -> None:
    principal.require_room_admin(room)
