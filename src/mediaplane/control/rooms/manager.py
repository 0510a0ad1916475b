"""The room service, wired: rooms, participants and their media, across instances.

Ownership: this instance owns its LocalPeers (their WebSocket, and the SFU
transports, producers and consumers they created). Redis holds the shared
truth (rooms, every instance's peers and producers) and carries room events
between instances over pub/sub; the SFU's objects are global to it, so a peer
here can consume a producer created by a peer on another instance.

The parts: `records` (room CRUD, admin actions), `sessions` (one peer: join,
media, leave), `resumes` (a dropped signaling socket's grace period and
resume), `placement` (nodes, routers, workers, spanning), `events` (room
events in and out), `resync` (Redis restart, node down, worker died) and the
SFU `notifications`. Signaling, WHIP and the REST API use the parts; the
methods below keep the names the other services (jobs, metrics) use.

Tasks owned by RoomManager (started in start(), cancelled in close()): the
Redis event listener, the Redis watchdog (reconnect + resync), one delayed
router release per emptied room and one observer close per dropped room.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from mediaplane.control.auth import TrackSource
from mediaplane.control.limits import Limits
from mediaplane.control.rooms.events import RoomEvents, RoomListener
from mediaplane.control.rooms.layers import NO_CAPS, Bitrates
from mediaplane.control.rooms.notifications import SfuNotifications
from mediaplane.control.rooms.peers import LocalPeer, LocalRoom
from mediaplane.control.rooms.placement import Placement
from mediaplane.control.rooms.records import RoomRecords
from mediaplane.control.rooms.resume import Resumes
from mediaplane.control.rooms.resync import Resync
from mediaplane.control.rooms.sessions import Sessions
from mediaplane.control.sfu_pool import SfuPool
from mediaplane.control.tasks import OwnedTasks
from mediaplane.sfu import SfuClient
from mediaplane.state.models import ProducerRecord, RoomRecord
from mediaplane.state.store import StateStore
from mediaplane.wire.ids import Json
from mediaplane.wire.room_events import RoomEvent

T = TypeVar("T")


class RoomManager:
    def __init__(
        self,
        store: StateStore,
        sfu: SfuClient | SfuPool,
        *,
        instance_id: str | None = None,
        auto_create_rooms: bool = True,
        span_after_peers: int | None = None,
        resume_grace_s: float = 20.0,
        resume_tombstone_s: float = 300.0,
        joined_room_empty_timeout_s: int = 60,
        limits: Limits | None = None,
        bitrates: Bitrates = NO_CAPS,
        last_n: int = 0,
        video_codec: str = "vp8",
    ) -> None:
        self.store = store
        # Where rooms run: one SFU (static) or the nodes registered in Redis.
        self.pool = sfu if isinstance(sfu, SfuPool) else SfuPool.static(sfu)
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.tasks = OwnedTasks()
        self._closed = False
        # Called for what this instance itself does (rooms, participants): webhooks.
        self.on_event: Callable[[str, Json], object] = lambda _name, _data: None
        # What this instance created, e.g. "produce.audio", "consume.video" (/metrics).
        self.counts: Counter[str] = Counter()

        def notify(name: str, data: Json) -> object:
            return self.on_event(name, data)

        self.placement = Placement(
            store, self.pool, self.tasks, span_after_peers=span_after_peers, notify=notify
        )
        self.events = RoomEvents(store, self.instance_id, self.placement.rooms)
        self.sessions = Sessions(
            store, self.placement, self.events, notify=notify, counts=self.counts,
            auto_create_rooms=auto_create_rooms, limits=limits, bitrates=bitrates,
            last_n=last_n, joined_room_empty_timeout_s=joined_room_empty_timeout_s,
            video_codec=video_codec,
        )  # fmt: skip
        self.events.here = self.sessions
        self.records = RoomRecords(store, self.placement, self.sessions, self.events, notify=notify)
        self.resync = Resync(store, self.placement, self.sessions, self.instance_id)
        self.notifications = SfuNotifications(store, self.sessions, self.resync)
        self.resumes = Resumes(
            store, self.placement, self.sessions, self.events, self.tasks, self.instance_id,
            grace_s=resume_grace_s, tombstone_s=resume_tombstone_s,
        )  # fmt: skip

    @property
    def rooms(self) -> dict[str, LocalRoom]:
        """The rooms with peers on this instance."""
        return self.placement.rooms

    @property
    def room_listeners(self) -> list[RoomListener]:
        """Called, typed, for every room event of every instance (recordings, egress)."""
        return self.events.room_listeners

    # lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        self.pool.add_listener(self.notifications.listener)
        self.pool.on_node_down.append(self.resync.on_node_down)
        self.tasks.spawn(self.events.listen(), f"room-events {self.instance_id}")
        self.tasks.spawn(self.resync.watch_redis(), f"redis-watchdog {self.instance_id}")
        if self.resumes.enabled:
            self.tasks.spawn(self.resumes.sweep_forever(), f"orphan-sweep {self.instance_id}")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.pool.remove_listener(self.notifications.listener)
        with contextlib.suppress(ValueError):
            self.pool.on_node_down.remove(self.resync.on_node_down)
        for room in list(self.rooms.values()):
            for peer in list(room.peers.values()):
                with contextlib.suppress(Exception):
                    await self.leave(peer, "server shutting down")
        await self.tasks.cancel()

    # where rooms run --------------------------------------------------------------
    @property
    def sfu(self) -> SfuClient:
        """A live node's client, for calls not tied to a room (health, server stats)."""
        return self.pool.default

    def sfu_of(self, peer: LocalPeer) -> SfuClient:
        return self.sessions.sfu_of(peer)

    def room_of(self, peer: LocalPeer) -> LocalRoom:
        return self.sessions.room_of(peer)

    async def room_sfu(self, name: str) -> SfuClient:
        return await self.placement.room_sfu(name)

    async def usable_producer(
        self, room: str, sfu: SfuClient, producer: ProducerRecord, router_id: str
    ) -> str:
        return await self.placement.usable_producer(room, sfu, producer, router_id)

    async def get_room(self, name: str) -> RoomRecord:
        return await self.records.get_room(name)

    # sessions (for the services that join peers: injections, recordings) ----------
    async def before_join(self, name: str, check: Callable[[Json], T]) -> T:
        return await self.sessions.before_join(name, check)

    async def join(self, peer: LocalPeer) -> Json:
        return await self.sessions.join(peer)

    async def leave(self, peer: LocalPeer, reason: str) -> None:
        await self.sessions.leave(peer, reason)

    async def create_transport(self, peer: LocalPeer, direction: str) -> Json:
        return await self.sessions.create_transport(peer, direction)

    async def produce(
        self,
        peer: LocalPeer,
        transport_id: str,
        kind: str,
        rtp_parameters: Json,
        source: TrackSource,
        paused: bool,
    ) -> str:
        return await self.sessions.produce(peer, transport_id, kind, rtp_parameters, source, paused)

    async def consume(
        self, peer: LocalPeer, transport_id: str, producer_id: str, rtp_capabilities: Json
    ) -> Json:
        return await self.sessions.consume(peer, transport_id, producer_id, rtp_capabilities)

    def owned_consumer(self, peer: LocalPeer, consumer_id: str) -> str:
        return peer.owns_consumer(consumer_id)

    async def set_producer_paused(self, peer: LocalPeer, producer_id: str, paused: bool) -> None:
        await self.sessions.set_producer_paused(peer, producer_id, paused)

    # room events ---------------------------------------------------------------------
    async def publish_event(self, event: RoomEvent) -> None:
        """A room event from another service of this instance (e.g. recordings)."""
        await self.events.publish(event)
