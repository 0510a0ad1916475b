"""REST: rooms and their participants (docs/rest-api.md)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal, Self

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from mediaplane.control.auth import Grants
from mediaplane.control.deps import PrincipalDep, RoomsDep
from mediaplane.control.errors import NotFound, Unavailable
from mediaplane.control.rooms import RoomManager
from mediaplane.sfu import SfuClient, SfuError
from mediaplane.state.models import RoomRecord
from mediaplane.wire.ids import NAME_PATTERN, Json

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/rooms", tags=["rooms"])
Expand = Annotated[
    list[Literal["participants", "stats"]] | None,
    Query(
        description="participants: each room's participants; stats: and their tracks' stats "
        "(in the rooms the caller administers). Repeat the parameter for both. One snapshot, "
        "for dashboards: a room deleted while it is taken is left out, not a 404."
    ),
]
RoomName = Path(pattern=NAME_PATTERN, description="room name")
Identity = Path(pattern=NAME_PATTERN, description="participant identity")


class RoomCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    max_participants: int = Field(default=50, ge=1, le=1000)
    empty_timeout_s: int = Field(default=300, ge=0, le=86400)
    metadata: str = Field(default="", max_length=4096)


class RoomUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_participants: int | None = Field(default=None, ge=1, le=1000)
    empty_timeout_s: int | None = Field(default=None, ge=0, le=86400)
    metadata: str | None = Field(default=None, max_length=4096)


class TrackStats(BaseModel):
    """A producer's live figures from the SFU (mediasoup's producer.getStats())."""

    bitrate: int
    packetsLost: int
    packetCount: int
    score: int


class Track(BaseModel):
    producerId: str  # the signaling protocol's names
    kind: str
    source: str
    paused: bool


class ListedTrack(Track):
    stats: TrackStats | None = Field(
        default=None,
        description="only when asked for; null when the SFU has none in time (the track just "
        "closed, or its node is unreachable or slow)",
    )


class ParticipantOut(BaseModel):
    peerId: str
    identity: str
    name: str
    kind: str = Field(default="participant", description="participant, or ingress (an injection)")
    instance: str
    joinedAt: float
    state: str = Field(
        default="joined",
        description="joined, or disconnected: its socket dropped, it may still resume "
        "(docs/signaling.md#resuming-a-session)",
    )
    tracks: list[ListedTrack]


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
    def of(cls, room: RoomRecord, participants: int | None = None) -> Self:
        return cls(**room.model_dump(exclude={"empty_since"}), num_participants=participants)


class ListedRoom(RoomOut):
    participants: list[ParticipantOut] | None = None  # with ?expand=participants


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
    return RoomOut.of(await rooms.records.create_room(RoomRecord(**body.model_dump())), 0)


STATS_TIMEOUT_S = 1.0  # per track: a slow node must not stall a dashboard's listing


async def track_stats(sfu: SfuClient, room: str, producer_id: str) -> TrackStats | None:
    """A producer's stats, or None when the SFU has none in time: it closed since it was
    listed, or its node is slow or gone (a listing is a snapshot; one track must not fail
    it)."""
    try:
        stats = await sfu.get_stats("producer", producer_id, timeout=STATS_TIMEOUT_S)
    except SfuError as e:
        log.debug("room=%s producer=%s no stats: %s", room, producer_id, e)
        return None
    return TrackStats(
        bitrate=sum(int(s.get("bitrate", 0)) for s in stats),
        packetsLost=sum(int(s.get("packetsLost", 0)) for s in stats),
        packetCount=sum(int(s.get("packetCount", 0)) for s in stats),
        score=max((int(s.get("score", 0)) for s in stats), default=0),
    )


async def participants_of(rooms: RoomManager, room: str, *, stats: bool) -> list[ParticipantOut]:
    """A room's participants, each track with its stats when `stats` (fetched at once)."""
    people = [ParticipantOut.model_validate(p) for p in await rooms.records.participants(room)]
    tracks = [t for person in people for t in person.tracks]
    if stats and tracks:
        try:
            sfu = await rooms.room_sfu(room)
        except Unavailable as e:  # the room's node is gone: its tracks have no stats
            log.debug("room=%s no stats: %s", room, e)
            for t in tracks:
                t.stats = None
            return people
        found = await asyncio.gather(*(track_stats(sfu, room, t.producerId) for t in tracks))
        for t, s in zip(tracks, found, strict=True):
            t.stats = s
    return people


@router.get("", response_model=list[ListedRoom], response_model_exclude_unset=True)
async def list_rooms(
    principal: PrincipalDep,
    rooms: RoomsDep,
    expand: Expand = None,
) -> list[ListedRoom]:
    """Every room (grant: room_list)."""
    principal.require("room_list")
    out = []
    for room in await rooms.records.list_rooms():
        item = ListedRoom.of(room, await rooms.store.count_peers(room.name))
        if expand:
            stats = "stats" in expand and principal.administers(room.name)
            try:
                people = await participants_of(rooms, room.name, stats=stats)
            except NotFound:
                continue  # deleted since it was listed
            item.participants, item.num_participants = people, len(people)
        out.append(item)
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
    changes: Json = body.model_dump(exclude_none=True)
    return RoomOut.of(await rooms.records.update_room(room, changes))


@router.delete("/{room}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_room(principal: PrincipalDep, rooms: RoomsDep, room: str = RoomName) -> None:
    """Delete a room, disconnecting its participants (grant: room_create)."""
    principal.require("room_create")
    await rooms.records.delete_room(room)


@router.get(
    "/{room}/participants", response_model=list[ParticipantOut], response_model_exclude_unset=True
)
async def list_participants(
    principal: PrincipalDep,
    rooms: RoomsDep,
    room: str = RoomName,
    stats: bool = Query(default=False, description="each track's live stats (room_admin)"),
) -> list[ParticipantOut]:
    """Participants and their tracks (grant: room_admin, or room_list)."""
    if stats or not principal.grants.room_list:
        principal.require_room_admin(room)
    return await participants_of(rooms, room, stats=stats)


@router.delete("/{room}/participants/{identity}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_participant(
    principal: PrincipalDep, rooms: RoomsDep, room: str = RoomName, identity: str = Identity
) -> None:
    """Disconnect a participant (grant: room_admin)."""
    principal.require_room_admin(room)
    await rooms.records.remove_participant(room, identity)


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
    record = await rooms.records.mute_track(room, identity, producer_id, body.muted)
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
    """Replace a connected participant's grants (grant: room_admin; room_create and
    room_list only by a caller that holds them)."""
    grants = body.grants.model_copy(update={"room": room})
    principal.require_may_grant(room, grants)
    await rooms.records.update_grants(room, identity, grants)
