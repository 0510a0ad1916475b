"""Room records (the REST API's rooms): create, read, list, update, delete, and
what an admin does to a participant (list, remove, mute a track, change grants).

The records live in Redis (state/store.py); an admin's action on a participant
is published as a room event, which the instance owning that participant acts
on (events.py), and applied at once to the participants of this instance.
"""

from __future__ import annotations

import logging

from mediaplane.control.auth import Grants
from mediaplane.control.errors import Conflict, NotFound
from mediaplane.control.rooms.events import RoomEvents
from mediaplane.control.rooms.guard import redis_call
from mediaplane.control.rooms.peers import CLOSE_KICKED, CLOSE_ROOM_DELETED
from mediaplane.control.rooms.placement import Placement
from mediaplane.control.rooms.sessions import Notify, Sessions
from mediaplane.state.models import ProducerRecord, RoomRecord
from mediaplane.state.store import StateStore
from mediaplane.wire.ids import Json
from mediaplane.wire.room_events import GrantsChanged, Kick, RoomCreated, RoomDeleted

log = logging.getLogger(__name__)


class RoomRecords:
    def __init__(
        self,
        store: StateStore,
        placement: Placement,
        sessions: Sessions,
        events: RoomEvents,
        *,
        notify: Notify,
    ) -> None:
        self.store = store
        self.placement = placement
        self.sessions = sessions
        self.events = events
        self.notify = notify

    async def create_room(self, record: RoomRecord) -> RoomRecord:
        if not await redis_call(self.store.create_room(record)):
            raise Conflict(f"room {record.name!r} already exists")
        await self.events.publish(RoomCreated(room=record.name))
        self.notify("room.created", {"room": record.name})
        log.info("room created room=%s", record.name)
        return record

    async def get_room(self, name: str) -> RoomRecord:
        return await self.placement.get_room(name)

    async def list_rooms(self) -> list[RoomRecord]:
        return await redis_call(self.store.list_rooms())

    async def update_room(self, name: str, changes: Json) -> RoomRecord:
        room = await self.get_room(name)
        updated = RoomRecord.model_validate(room.model_dump() | changes)
        if not await redis_call(self.store.update_room(updated)):
            raise NotFound(f"room {name!r} does not exist")
        return updated

    async def delete_room(self, name: str) -> None:
        room = await self.get_room(name)
        await self.events.publish(RoomDeleted(room=name))
        await self.sessions.kick(name, None, CLOSE_ROOM_DELETED, "room deleted")
        self.placement.cancel_release(name)
        await self.placement.close_routers(room, "room deleted")
        await redis_call(self.store.delete_room(name))
        self.notify("room.deleted", {"room": name})
        log.info("room deleted room=%s", name)

    # participants ------------------------------------------------------------------
    async def participants(self, name: str) -> list[Json]:
        await self.get_room(name)
        peers = await redis_call(self.store.list_peers(name))
        producers = await redis_call(self.store.list_producers(name))
        out = []
        for p in sorted(peers, key=lambda p: p.joined_at):
            tracks = [
                {
                    "producerId": pr.producer_id,
                    "kind": pr.kind,
                    "source": pr.source,
                    "paused": pr.paused,
                }
                for pr in producers
                if pr.peer_id == p.peer_id
            ]
            out.append(
                {
                    "peerId": p.peer_id,
                    "identity": p.identity,
                    "name": p.name,
                    "kind": p.kind,
                    "instance": p.instance,
                    "joinedAt": p.joined_at,
                    "state": p.state,
                    "tracks": tracks,
                }
            )
        return out

    async def _require_participant(self, room: str, identity: str) -> None:
        peers = await redis_call(self.store.list_peers(room))
        if not any(p.identity == identity for p in peers):
            raise NotFound(f"participant {identity!r} is not in room {room!r}")

    async def remove_participant(self, room: str, identity: str) -> None:
        await self._require_participant(room, identity)
        await self.events.publish(Kick(room=room, identity=identity))
        await self.sessions.kick(room, identity, CLOSE_KICKED, "removed by an admin")

    async def mute_track(
        self, room: str, identity: str, producer_id: str, muted: bool
    ) -> ProducerRecord:
        producer = await redis_call(self.store.get_producer(room, producer_id))
        if producer is None or producer.identity != identity:
            raise NotFound(f"{identity!r} has no track {producer_id!r} in room {room!r}")
        sfu = await self.placement.room_sfu(room)
        await self.sessions.set_paused(room, producer, muted, sfu, by_admin=True)
        return producer

    async def update_grants(self, room: str, identity: str, grants: Grants) -> None:
        await self._require_participant(room, identity)
        await self.events.publish(
            GrantsChanged(room=room, identity=identity, grants=grants.model_dump(mode="json"))
        )
        await self.sessions.apply_grants(room, identity, grants)
