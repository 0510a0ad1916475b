"""REST: rooms and their participants (docs/rest-api.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field

from mediaplane.control.auth import Grants
from mediaplane.control.deps import PrincipalDep, RoomsDep
from mediaplane.state.models import RoomRecord

router = APIRouter(prefix="/api/rooms", tags=["rooms"])
RoomName = Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="room name")
Identity = Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="participant identity")


class RoomCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    max_participants: int = Field(default=50, ge=1, le=1000)
    empty_timeout_s: int = Field(default=300, ge=0, le=86400)
    metadata: str = Field(default="", max_length=4096)


class RoomUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_participants: int | None = Field(default=None, ge=1, le=1000)
    empty_timeout_s: int | None = Field(default=None, ge=0, le=86400)
    metadata: str | None = Field(default=None, max_length=4096)


class RoomOut(BaseModel):
    name: str
    max_participants: int
    empty_timeout_s: int
    metadata: str
    created_at: float
    num_participants: int | None = None
    router_id: str | None = None
    worker_pid: int | None = None
    node_id: str | None = None  # the SFU node hosting the room (`static` with one SFU)
    extra_routers: dict[str, int] = {}  # router id -> worker pid, when the room spans workers

    @classmethod
    def of(cls, room: RoomRecord, participants: int | None = None) -> RoomOut:
        return cls(**room.model_dump(exclude={"empty_since"}), num_participants=participants)


class Track(BaseModel):
    producerId: str  # the signaling protocol's names
    kind: str
    source: str
    paused: bool


class ParticipantOut(BaseModel):
    peerId: str
    identity: str
    name: str
    kind: str = Field(default="participant", description="participant, or ingress (an injection)")
    instance: str
    joinedAt: float
    tracks: list[Track]


class MuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    muted: bool


class GrantsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grants: Grants


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RoomOut)
async def create_room(body: RoomCreate, principal: PrincipalDep, rooms: RoomsDep) -> RoomOut:
    """Create a room (grant: room_create)."""
    principal.require("room_create")
    return RoomOut.of(await rooms.create_room(RoomRecord(**body.model_dump())), 0)


@router.get("", response_model=list[RoomOut])
async def list_rooms(principal: PrincipalDep, rooms: RoomsDep) -> list[RoomOut]:
    """Every room (grant: room_list)."""
    principal.require("room_list")
    out = []
    for room in await rooms.list_rooms():
        out.append(RoomOut.of(room, await rooms.store.count_peers(room.name)))
    return out


@router.get("/{room}", response_model=RoomOut)
async def get_room(principal: PrincipalDep, rooms: RoomsDep, room: str = RoomName) -> RoomOut:
    """One room (any grant for this room)."""
    principal.require_room(room)
    record = await rooms.get_room(room)
    return RoomOut.of(record, await rooms.store.count_peers(room))


@router.patch("/{room}", response_model=RoomOut)
async def update_room(
    body: RoomUpdate, principal: PrincipalDep, rooms: RoomsDep, room: str = RoomName
) -> RoomOut:
    """Change a room's limits or metadata (grant: room_admin)."""
    principal.require_room_admin(room)
    changes: dict[str, Any] = body.model_dump(exclude_none=True)
    return RoomOut.of(await rooms.update_room(room, changes))


@router.delete("/{room}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_room(principal: PrincipalDep, rooms: RoomsDep, room: str = RoomName) -> None:
    """Delete a room, disconnecting its participants (grant: room_create)."""
    principal.require("room_create")
    await rooms.delete_room(room)


@router.get("/{room}/participants", response_model=list[ParticipantOut])
async def list_participants(
    principal: PrincipalDep, rooms: RoomsDep, room: str = RoomName
) -> list[dict[str, Any]]:
    """Participants and their tracks (grant: room_admin, or room_list)."""
    if not principal.grants.room_list:
        principal.require_room_admin(room)
    return await rooms.participants(room)


@router.delete("/{room}/participants/{identity}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_participant(
    principal: PrincipalDep, rooms: RoomsDep, room: str = RoomName, identity: str = Identity
) -> None:
    """Disconnect a participant (grant: room_admin)."""
    principal.require_room_admin(room)
    await rooms.remove_participant(room, identity)


@router.post("/{room}/participants/{identity}/tracks/{producer_id}/mute", response_model=Track)
async def mute_track(
    body: MuteRequest,
    principal: PrincipalDep,
    rooms: RoomsDep,
    producer_id: str,
    room: str = RoomName,
    identity: str = Identity,
) -> Track:
    """Mute or unmute a participant's track (grant: room_admin)."""
    principal.require_room_admin(room)
    record = await rooms.mute_track(room, identity, producer_id, body.muted)
    return Track(
        producerId=record.producer_id, kind=record.kind, source=record.source, paused=record.paused
    )


@router.put("/{room}/participants/{identity}/grants", status_code=status.HTTP_204_NO_CONTENT)
async def update_grants(
    body: GrantsUpdate,
    principal: PrincipalDep,
    rooms: RoomsDep,
    room: str = RoomName,
    identity: str = Identity,
) -> None:
    """Replace a connected participant's grants (grant: room_admin)."""
    principal.require_room_admin(room)
    await rooms.update_grants(room, identity, body.grants.model_copy(update={"room": room}))
