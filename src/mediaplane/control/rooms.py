"""The room service: rooms, participants and their media, across instances.

Ownership: this instance owns its LocalPeers (their WebSocket, and the SFU
transports, producers and consumers they created). Redis holds the shared
truth (rooms, every instance's peers and producers) and carries room events
between instances over pub/sub; the SFU's objects are global to it, so a peer
here can consume a producer created by a peer on another instance.

Tasks owned by RoomManager (started in start(), cancelled in close()): the
Redis event listener, the Redis watchdog (reconnect + resync) and one delayed
router release per emptied room.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio as aioredis
from pydantic import ValidationError

from mediaplane.control.auth import Grants, Principal, TrackSource
from mediaplane.control.errors import Conflict, InvalidState, NotFound, RoomFull, Unavailable
from mediaplane.control.peers import LocalPeer
from mediaplane.control.sfu_pool import SfuPool
from mediaplane.sfu import SfuClient, SfuConnectionError, SfuError, SfuRpcError
from mediaplane.sfu.models import Notification
from mediaplane.state import keys
from mediaplane.state.models import ProducerRecord, RoomRecord
from mediaplane.state.store import StateStore

log = logging.getLogger(__name__)
Json = dict[str, Any]
T = TypeVar("T")

REDIS_ERRORS = (aioredis.ConnectionError, aioredis.TimeoutError, OSError)
CLOSE_KICKED = 4003
CLOSE_REPLACED = 4009
CLOSE_ROOM_DELETED = 4004


@dataclass
class LocalRoom:
    name: str
    router_id: str
    rtp_capabilities: Json
    sfu: SfuClient
    node_id: str
    peers: dict[str, LocalPeer] = field(default_factory=dict)
    speaker_observer: str | None = None


class RoomManager:
    def __init__(
        self,
        store: StateStore,
        sfu: SfuClient | SfuPool,
        *,
        instance_id: str | None = None,
        auto_create_rooms: bool = True,
        span_after_peers: int | None = None,
    ) -> None:
        self.store = store
        # Where rooms run: one SFU (static) or the nodes registered in Redis.
        self.pool = sfu if isinstance(sfu, SfuPool) else SfuPool.static(sfu)
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.auto_create_rooms = auto_create_rooms
        # Participants per router before a room spans another worker (None: never).
        self.span_after_peers = span_after_peers
        self.rooms: dict[str, LocalRoom] = {}
        self._consumer_owner: dict[str, LocalPeer] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._release: dict[str, asyncio.Task[None]] = {}
        self._room_locks: dict[str, asyncio.Lock] = {}
        self._redis_ok = asyncio.Event()
        self._closed = False
        # Called for what this instance itself does (rooms, participants): webhooks.
        self.on_event: Callable[[str, Json], object] = lambda _name, _data: None
        # Called for every room event of every instance (from Redis): recordings.
        self.room_listeners: list[Callable[[str, str, Json], Awaitable[None]]] = []
        # What this instance created, e.g. "produce.audio", "consume.video" (/metrics).
        self.counts: Counter[str] = Counter()

    # lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        self.pool.add_listener(self._on_sfu)
        self.pool.on_node_down.append(self._on_node_down)
        self._spawn(self._listen_events(), "room-events")
        self._spawn(self._watch_redis(), "redis-watchdog")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"{name} {self.instance_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.pool.remove_listener(self._on_sfu)
        with contextlib.suppress(ValueError):
            self.pool.on_node_down.remove(self._on_node_down)
        for room in list(self.rooms.values()):
            for peer in list(room.peers.values()):
                with contextlib.suppress(Exception):
                    await self.leave(peer, "server shutting down")
        tasks = list(self._tasks) + list(self._release.values())
        # Cancel until done: redis-py can swallow a cancel (e.g. 5 of 300 in an hget).
        while pending := [t for t in tasks if not t.done()]:
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=0.5)
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def sfu(self) -> SfuClient:
        """A live node's client, for calls not tied to a room (health, server stats)."""
        return self.pool.default

    def sfu_of(self, peer: LocalPeer) -> SfuClient:
        """The SFU client of the node hosting this peer's room."""
        return self.room_of(peer).sfu

    async def room_sfu(self, name: str) -> SfuClient:
        """The SFU client of the node a room is placed on (any instance's room)."""
        local = self.rooms.get(name)
        if local is not None:
            return local.sfu
        room = await self.get_room(name)
        return self.pool.client(room.node_id or (await self.pool.least_loaded()))

    def _lock(self, room: str) -> asyncio.Lock:
        return self._room_locks.setdefault(room, asyncio.Lock())

    # rooms (REST) ------------------------------------------------------------
    async def create_room(self, record: RoomRecord) -> RoomRecord:
        if not await self._redis(self.store.create_room(record)):
            raise Conflict(f"room {record.name!r} already exists")
        await self._publish(record.name, {"type": "roomCreated"})
        self.on_event("room.created", {"room": record.name})
        log.info("room created room=%s", record.name)
        return record

    async def get_room(self, name: str) -> RoomRecord:
        room = await self._redis(self.store.get_room(name))
        if room is None:
            raise NotFound(f"room {name!r} does not exist")
        return room

    async def list_rooms(self) -> list[RoomRecord]:
        return await self._redis(self.store.list_rooms())

    async def update_room(self, name: str, changes: Json) -> RoomRecord:
        room = await self.get_room(name)
        updated = RoomRecord.model_validate(room.model_dump() | changes)
        if not await self._redis(self.store.update_room(updated)):
            raise NotFound(f"room {name!r} does not exist")
        return updated

    async def delete_room(self, name: str) -> None:
        room = await self.get_room(name)
        await self._publish(name, {"type": "roomDeleted"})
        await self._kick_local(name, None, CLOSE_ROOM_DELETED, "room deleted")
        if task := self._release.pop(name, None):
            task.cancel()
        if self.pool.alive(room.node_id):
            for router_id in [room.router_id, *room.extra_routers]:
                if router_id:
                    with contextlib.suppress(SfuError):
                        await self.pool.client(room.node_id).close_router(router_id)
        await self._redis(self.store.delete_room(name))
        self.on_event("room.deleted", {"room": name})
        log.info("room deleted room=%s", name)

    async def participants(self, name: str) -> list[Json]:
        await self.get_room(name)
        peers = await self._redis(self.store.list_peers(name))
        producers = await self._redis(self.store.list_producers(name))
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
                    "tracks": tracks,
                }
            )
        return out

    async def remove_participant(self, room: str, identity: str) -> None:
        peers = await self._redis(self.store.list_peers(room))
        if not any(p.identity == identity for p in peers):
            raise NotFound(f"participant {identity!r} is not in room {room!r}")
        await self._publish(room, {"type": "kick", "identity": identity})
        await self._kick_local(room, identity, CLOSE_KICKED, "removed by an admin")

    async def mute_track(
        self, room: str, identity: str, producer_id: str, muted: bool
    ) -> ProducerRecord:
        producer = await self._redis(self.store.get_producer(room, producer_id))
        if producer is None or producer.identity != identity:
            raise NotFound(f"{identity!r} has no track {producer_id!r} in room {room!r}")
        sfu = await self.room_sfu(room)
        await self._sfu(
            sfu.pause_producer(producer_id) if muted else sfu.resume_producer(producer_id)
        )
        producer.paused = muted
        await self._redis(self.store.put_producer(room, producer))
        event = "producerPaused" if muted else "producerResumed"
        await self._publish(
            room,
            {"type": event, "producerId": producer_id, "peerId": producer.peer_id, "byAdmin": True},
        )
        return producer

    async def update_grants(self, room: str, identity: str, grants: Grants) -> None:
        peers = await self._redis(self.store.list_peers(room))
        if not any(p.identity == identity for p in peers):
            raise NotFound(f"participant {identity!r} is not in room {room!r}")
        payload = {"type": "grants", "identity": identity, "grants": grants.model_dump(mode="json")}
        await self._publish(room, payload)
        await self._apply_grants(room, identity, grants)

    # joining and leaving -------------------------------------------------------
    async def join(self, peer: LocalPeer) -> Json:
        """Add a peer; returns what the join response carries."""
        name = peer.room
        async with self._lock(name):
            room = await self._redis(self.store.get_room(name))
            if room is None:
                if not self.auto_create_rooms:
                    raise NotFound(f"room {name!r} does not exist")
                room = RoomRecord(name=name)
                if await self._redis(self.store.create_room(room)):
                    self.on_event("room.created", {"room": name, "auto": True})
                room = await self.get_room(name)
            # One session per identity: a rejoin replaces the old one (LiveKit does the same).
            for other in await self._redis(self.store.list_peers(name)):
                if other.identity == peer.identity:
                    await self._publish(name, {"type": "replaced", "peerId": other.peer_id})
                    await self._replace_local(name, other.peer_id)
                    await self._redis(self.store.remove_peer(name, other.peer_id))
            if await self._redis(self.store.count_peers(name)) >= room.max_participants:
                raise RoomFull(f"room {name!r} is full ({room.max_participants} participants)")
            local = await self._local_room(room)
            caps = await self._assign_router(local, peer)
            await self._redis(self.store.put_peer(name, peer.record()))
            if await self._redis(self.store.count_peers(name)) > room.max_participants:
                await self._redis(self.store.remove_peer(name, peer.peer_id))
                raise RoomFull(f"room {name!r} is full ({room.max_participants} participants)")
            local.peers[peer.peer_id] = peer
            if task := self._release.pop(name, None):
                task.cancel()
        peers = [
            p for p in await self._redis(self.store.list_peers(name)) if p.peer_id != peer.peer_id
        ]
        producers = [
            p
            for p in await self._redis(self.store.list_producers(name))
            if p.peer_id != peer.peer_id
        ]
        await self._publish(
            name, {"type": "peerJoined", "peer": peer.public()}, origin=peer.peer_id
        )
        self.on_event("participant.joined", {"room": name, **peer.public()})
        log.info("peer joined room=%s peer=%s identity=%s", name, peer.peer_id, peer.identity)
        return {
            "peerId": peer.peer_id,
            "roomId": name,
            "routerRtpCapabilities": caps,
            "peers": [
                {"peerId": p.peer_id, "identity": p.identity, "displayName": p.name, "kind": p.kind}
                for p in peers
            ],
            "producers": [_producer_event(p) for p in producers],
        }

    async def before_join(self, name: str, check: Callable[[Json], T]) -> T:
        """`check(the RTP capabilities a joining participant gets)`, before joining: an
        offer refused there must not replace a live session of the same identity. The
        room is placed when it has no router here; if `check` raises, that is undone."""
        try:
            async with self._lock(name):
                caps = (await self._local_room(await self.get_room(name))).rtp_capabilities
            return check(caps)
        except Exception:
            await self._forget_if_empty(name)
            raise

    async def _forget_if_empty(self, name: str) -> None:
        local = self.rooms.get(name)
        if local is not None and not local.peers:
            self._drop_local_room(local)
            with contextlib.suppress(*REDIS_ERRORS):
                if await self.store.count_peers(name) == 0:
                    self._schedule_release(name)

    async def _local_room(self, room: RoomRecord) -> LocalRoom:
        local = self.rooms.get(room.name)
        if local is not None:
            return local
        placed = await self._redis(self._place(room.name))
        if placed is None:
            raise NotFound(f"room {room.name!r} does not exist")
        if placed.node_id is None:
            raise Unavailable("no SFU node is up to host this room")
        room = placed
        node_id = placed.node_id
        sfu = self.pool.client(node_id)
        router = await self._sfu(sfu.create_router(room.name))
        if room.router_id != router.router_id:
            room.router_id, room.worker_pid, room.empty_since = (
                router.router_id,
                router.worker_pid,
                None,
            )
            await self._redis(self.store.update_room(room))
        local = LocalRoom(room.name, router.router_id, router.rtp_capabilities, sfu, node_id)
        with contextlib.suppress(SfuError):
            local.speaker_observer = await sfu.create_active_speaker_observer(router.router_id)
            for p in await self._redis(self.store.list_producers(room.name)):
                if p.kind == "audio":
                    with contextlib.suppress(SfuRpcError):
                        await sfu.observer_add_producer(local.speaker_observer, p.producer_id)
        self.rooms[room.name] = local
        log.info("room placed room=%s node=%s router=%s", room.name, node_id, router.router_id)
        return local

    async def _assign_router(self, local: LocalRoom, peer: LocalPeer) -> Json:
        """The router a joining participant uses; its RTP capabilities.

        A room spans workers when its routers hold `span_after_peers` participants
        each: the next router is `router.create` of `{room}~{n}` (the SFU puts it on
        its least-loaded worker, and every instance asking for that key gets the
        same router). Producers reach other routers by pipeToRouter on consume.
        """
        peer.router_id = None
        if self.span_after_peers is None or peer.kind != "participant":
            return local.rtp_capabilities
        room = await self.get_room(local.name)
        counts: dict[str | None, int] = {}
        for p in await self._redis(self.store.list_peers(local.name)):
            if p.kind == "participant" and p.peer_id != peer.peer_id:
                counts[p.router_id] = counts.get(p.router_id, 0) + 1
        if counts.get(None, 0) < self.span_after_peers:
            return local.rtp_capabilities
        for router_id in room.extra_routers:
            if counts.get(router_id, 0) < self.span_after_peers:
                peer.router_id = router_id
                return local.rtp_capabilities
        key = f"{local.name}~{len(room.extra_routers) + 1}"
        # On another worker than the room's routers: spreading the room is the point.
        busy = [pid for pid in (room.worker_pid, *room.extra_routers.values()) if pid]
        router = await self._sfu(local.sfu.create_router(key, avoid_workers=busy))
        room.extra_routers[router.router_id] = router.worker_pid
        await self._redis(self.store.update_room(room))
        log.info(
            "room=%s spans router=%s worker=%d (%d routers)",
            local.name, router.router_id, router.worker_pid, len(room.extra_routers) + 1,
        )  # fmt: skip
        peer.router_id = router.router_id
        return router.rtp_capabilities

    async def usable_producer(
        self, room: str, sfu: SfuClient, producer: ProducerRecord, router_id: str
    ) -> str:
        """The id under which `producer` can be consumed on `router_id` (piped if needed)."""
        record = await self.get_room(room)
        source = producer.router_id or record.router_id
        if source is None or source == router_id:
            return producer.producer_id
        piped = await self._redis(self.store.get_pipe(room, producer.producer_id, router_id))
        if piped is not None:
            return piped
        info = await self._sfu(sfu.pipe_producer(producer.producer_id, router_id))
        kept = await self._redis(
            self.store.put_pipe(room, producer.producer_id, router_id, info.producer_id)
        )
        if kept != info.producer_id:  # another instance piped it first
            with contextlib.suppress(SfuError):
                await sfu.close_producer(info.producer_id)
        log.info(
            "producer=%s piped into router=%s as %s room=%s",
            producer.producer_id, router_id, kept, room,
        )  # fmt: skip
        return kept

    async def leave(self, peer: LocalPeer, reason: str) -> None:
        """Remove a peer: close its SFU objects, tell the others. Idempotent."""
        local = self.rooms.get(peer.room)
        if local is None or local.peers.pop(peer.peer_id, None) is None:
            return
        for consumer_id in list(peer.consumers):
            self._consumer_owner.pop(consumer_id, None)
        for transport_id in list(peer.transports):
            with contextlib.suppress(SfuError):
                await local.sfu.close_transport(transport_id)
        with contextlib.suppress(*REDIS_ERRORS):
            for producer_id in list(peer.producers):
                await self.store.remove_producer(peer.room, producer_id)
                await self.store.remove_pipes(peer.room, producer_id)
                await self._publish(
                    peer.room,
                    {"type": "producerClosed", "producerId": producer_id, "peerId": peer.peer_id},
                    origin=peer.peer_id,
                )
            await self.store.remove_peer(peer.room, peer.peer_id)
            await self._publish(
                peer.room,
                {"type": "peerLeft", "peerId": peer.peer_id, "reason": reason},
                origin=peer.peer_id,
            )
        peer.transports.clear()
        peer.producers.clear()
        peer.consumers.clear()
        self.on_event("participant.left", {"room": peer.room, "reason": reason, **peer.public()})
        log.info("peer left room=%s peer=%s reason=%s", peer.room, peer.peer_id, reason)
        if not local.peers:
            self._drop_local_room(local)
        with contextlib.suppress(*REDIS_ERRORS):
            if await self.store.count_peers(peer.room) == 0:
                self._schedule_release(peer.room)

    def _drop_local_room(self, local: LocalRoom) -> None:
        self.rooms.pop(local.name, None)
        if local.speaker_observer:
            observer, sfu = local.speaker_observer, local.sfu

            async def close_observer() -> None:
                with contextlib.suppress(SfuError):
                    await sfu.request("observer.close", {"observerId": observer})

            self._spawn(close_observer(), "observer-close")

    def _schedule_release(self, name: str) -> None:
        if name in self._release:
            return

        async def release() -> None:
            try:
                room = await self.store.get_room(name)
                if room is None:
                    return
                room.empty_since = room.empty_since or time.time()
                await self.store.update_room(room)
                await asyncio.sleep(room.empty_timeout_s)
                async with self._lock(name):
                    room = await self.store.get_room(name)
                    if room is None or await self.store.count_peers(name) > 0 or name in self.rooms:
                        return
                    if self.pool.alive(room.node_id):
                        for router_id in [room.router_id, *room.extra_routers]:
                            if router_id:
                                with contextlib.suppress(SfuError):
                                    await self.pool.client(room.node_id).close_router(router_id)
                                log.info("router released room=%s router=%s", name, router_id)
                    room.router_id, room.worker_pid, room.extra_routers = None, None, {}
                    await self.store.update_room(room)
                    # An empty room no longer counts against its node's load.
                    await self.store.place_room(name, lambda _r: None)
            except REDIS_ERRORS as e:
                log.warning("router release of room=%s skipped: %s", name, e)
            finally:
                self._release.pop(name, None)

        self._release[name] = self._spawn(release(), f"release {name}")

    # media -------------------------------------------------------------------
    def room_of(self, peer: LocalPeer) -> LocalRoom:
        local = self.rooms.get(peer.room)
        if local is None or peer.peer_id not in local.peers:
            raise InvalidState("join the room first")
        return local

    async def create_transport(self, peer: LocalPeer, direction: str) -> Json:
        local = self.room_of(peer)
        info = await self._sfu(
            local.sfu.create_webrtc_transport(
                peer.router_id or local.router_id,
                app_data={"peerId": peer.peer_id, "direction": direction},
            )
        )
        peer.transports[info.transport_id] = direction
        return info.model_dump(by_alias=True)

    async def produce(
        self,
        peer: LocalPeer,
        transport_id: str,
        kind: str,
        rtp_parameters: Json,
        source: TrackSource,
        paused: bool,
    ) -> str:
        local = self.room_of(peer)
        if peer.owns_transport(transport_id) != "send":
            raise InvalidState("produce needs a send transport")
        info = await self._sfu(
            local.sfu.produce(
                transport_id,
                kind,
                rtp_parameters,
                paused=paused,
                app_data={"peerId": peer.peer_id, "source": source},
            )
        )
        record = ProducerRecord(
            producer_id=info.producer_id, peer_id=peer.peer_id, identity=peer.identity,
            kind=info.kind, source=source, paused=paused, router_id=peer.router_id,
        )  # fmt: skip
        peer.producers[info.producer_id] = record
        await self._redis(self.store.put_producer(peer.room, record))
        if kind == "audio" and local.speaker_observer and peer.router_id is None:
            with contextlib.suppress(SfuRpcError):
                await local.sfu.observer_add_producer(local.speaker_observer, info.producer_id)
        await self._publish(
            peer.room, {"type": "newProducer", **_producer_event(record)}, origin=peer.peer_id
        )
        self.counts[f"produce.{info.kind}"] += 1
        log.info(
            "producer created room=%s peer=%s producer=%s kind=%s",
            peer.room,
            peer.peer_id,
            info.producer_id,
            kind,
        )
        return info.producer_id

    async def consume(
        self, peer: LocalPeer, transport_id: str, producer_id: str, rtp_capabilities: Json
    ) -> Json:
        local = self.room_of(peer)
        if peer.owns_transport(transport_id) != "recv":
            raise InvalidState("consume needs a recv transport")
        producer = await self._redis(self.store.get_producer(peer.room, producer_id))
        if producer is None:
            raise NotFound(f"producer {producer_id} is not in this room")
        if producer.peer_id == peer.peer_id:
            raise InvalidState("a peer does not consume its own producer")
        source_id = await self.usable_producer(
            peer.room, local.sfu, producer, peer.router_id or local.router_id
        )
        info = await self._sfu(
            local.sfu.consume(
                transport_id,
                source_id,
                rtp_capabilities,
                paused=True,
                app_data={"peerId": peer.peer_id},
            )
        )
        peer.consumers[info.consumer_id] = producer_id
        self._consumer_owner[info.consumer_id] = peer
        self.counts[f"consume.{info.kind}"] += 1
        out = info.model_dump(by_alias=True)
        # The room's producer id, also when a pipe of it is what is consumed.
        out.update(
            {"producerId": producer_id, "peerId": producer.peer_id, "source": producer.source}
        )
        return out

    def owned_consumer(self, peer: LocalPeer, consumer_id: str) -> str:
        if consumer_id not in peer.consumers:
            raise NotFound(f"no consumer {consumer_id} for this peer")
        return consumer_id

    def owned_producer(self, peer: LocalPeer, producer_id: str) -> ProducerRecord:
        record = peer.producers.get(producer_id)
        if record is None:
            raise NotFound(f"no producer {producer_id} for this peer")
        return record

    async def set_producer_paused(self, peer: LocalPeer, producer_id: str, paused: bool) -> None:
        record = self.owned_producer(peer, producer_id)
        sfu = self.sfu_of(peer)
        await self._sfu(
            sfu.pause_producer(producer_id) if paused else sfu.resume_producer(producer_id)
        )
        record.paused = paused
        await self._redis(self.store.put_producer(peer.room, record))
        event = "producerPaused" if paused else "producerResumed"
        await self._publish(
            peer.room,
            {"type": event, "producerId": producer_id, "peerId": peer.peer_id},
            origin=peer.peer_id,
        )

    async def close_producer(self, peer: LocalPeer, producer_id: str) -> None:
        self.owned_producer(peer, producer_id)
        await self._sfu(self.sfu_of(peer).close_producer(producer_id))
        peer.producers.pop(producer_id, None)
        await self._redis(self.store.remove_producer(peer.room, producer_id))
        await self._redis(self.store.remove_pipes(peer.room, producer_id))
        await self._publish(
            peer.room,
            {"type": "producerClosed", "producerId": producer_id, "peerId": peer.peer_id},
            origin=peer.peer_id,
        )

    # events --------------------------------------------------------------------
    async def _publish(self, room: str, event: Json, *, origin: str | None = None) -> None:
        body = dict(event, room=room, instance=self.instance_id, origin=origin)
        await self._redis(self.store.publish(keys.room_events(room), body))

    async def publish_event(self, room: str, event: Json) -> None:
        """A room event from another service of this instance (e.g. recordings)."""
        await self._publish(room, event)

    async def _listen_events(self) -> None:
        """One pattern subscription for every room; reconnects by itself."""
        pattern = keys.room_events("*")
        delay = 0.1
        while True:
            pubsub = self.store.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                delay = 0.1
                async for msg in pubsub.listen():
                    if msg.get("type") == "pmessage":
                        await self._on_room_event(str(msg["data"]))
            except REDIS_ERRORS as e:
                log.warning("room events: redis lost (%s); resubscribing in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _on_room_event(self, raw: str) -> None:
        try:
            event: Json = json.loads(raw)
            room = str(event["room"])
            kind = str(event["type"])
        except (ValueError, KeyError, TypeError):
            log.error("malformed room event ignored: %.200s", raw)
            return
        for listener in list(self.room_listeners):
            try:
                await listener(room, kind, event)
            except Exception:
                log.exception("room listener failed on %s in room=%s", kind, room)
        local = self.rooms.get(room)
        if local is None:
            return
        from_here = event.get("instance") == self.instance_id
        if kind == "kick" and not from_here:
            await self._kick_local(
                room, str(event.get("identity")), CLOSE_KICKED, "removed by an admin"
            )
            return
        if kind == "roomDeleted" and not from_here:
            await self._kick_local(room, None, CLOSE_ROOM_DELETED, "room deleted")
            return
        if kind == "replaced" and not from_here:
            await self._replace_local(room, str(event.get("peerId")))
            return
        if kind == "grants":
            if not from_here:
                with contextlib.suppress(ValidationError):
                    await self._apply_grants(
                        room, str(event["identity"]), Grants.model_validate(event["grants"])
                    )
            return
        if kind in ("producerPaused", "producerResumed"):
            for p in local.peers.values():
                if (rec := p.producers.get(str(event.get("producerId")))) is not None:
                    rec.paused = kind == "producerPaused"
        if (
            kind == "newProducer"
            and local.speaker_observer
            and event.get("kind") == "audio"
            and not from_here
        ):
            with contextlib.suppress(SfuError):
                await local.sfu.observer_add_producer(
                    local.speaker_observer, str(event["producerId"])
                )
        if kind not in (
            "peerJoined",
            "peerLeft",
            "newProducer",
            "producerClosed",
            "producerPaused",
            "producerResumed",
            "roomCreated",
            "recording",
        ):
            return
        data = {k: v for k, v in event.items() if k not in ("type", "room", "instance", "origin")}
        for peer in list(local.peers.values()):
            if peer.peer_id != event.get("origin"):
                await peer.send_event(kind, data)

    async def _kick_local(self, room: str, identity: str | None, code: int, reason: str) -> None:
        local = self.rooms.get(room)
        if local is None:
            return
        for peer in list(local.peers.values()):
            if identity is None or peer.identity == identity:
                await self.leave(peer, reason)
                await peer.disconnect(code, reason)

    async def _replace_local(self, room: str, peer_id: str) -> None:
        local = self.rooms.get(room)
        if local is not None and (peer := local.peers.get(peer_id)) is not None:
            await self.leave(peer, "replaced by a new session of the same identity")
            await peer.disconnect(CLOSE_REPLACED, "replaced by a new session")

    async def _apply_grants(self, room: str, identity: str, grants: Grants) -> None:
        local = self.rooms.get(room)
        if local is None:
            return
        for peer in local.peers.values():
            if peer.identity == identity:
                peer.principal = Principal(
                    identity=peer.identity, name=peer.principal.name,
                    api_key=peer.principal.api_key, grants=grants,
                )  # fmt: skip
                await peer.send_event(
                    "permissionsUpdated", {"grants": grants.model_dump(mode="json")}
                )
                for producer_id, rec in list(peer.producers.items()):
                    if not grants.may_publish(rec.source):
                        await self.close_producer(peer, producer_id)

    def _on_sfu(self, note: Notification) -> Any:
        return self._handle_sfu(note)

    async def _handle_sfu(self, note: Notification) -> None:
        kind = note.notification
        if kind == "consumer.closed":
            peer = self._consumer_owner.pop(str(note.get("consumerId")), None)
            if peer is not None:
                # peer.consumers names the room's producer (not a pipe of it).
                producer_id = peer.consumers.pop(str(note.get("consumerId")), None)
                await peer.send_event(
                    "consumerClosed",
                    {
                        "consumerId": note.get("consumerId"),
                        "producerId": producer_id or note.get("producerId"),
                    },
                )
        elif kind in ("consumer.producerPause", "consumer.producerResume"):
            peer = self._consumer_owner.get(str(note.get("consumerId")))
            if peer is not None:
                event = "consumerPaused" if kind.endswith("Pause") else "consumerResumed"
                producer_id = peer.consumers.get(str(note.get("consumerId")))
                await peer.send_event(
                    event,
                    {
                        "consumerId": note.get("consumerId"),
                        "producerId": producer_id or note.get("producerId"),
                    },
                )
        elif kind == "consumer.score":
            peer = self._consumer_owner.get(str(note.get("consumerId")))
            if peer is not None:
                await peer.send_event(
                    "consumerScore",
                    {"consumerId": note.get("consumerId"), "score": note.get("score")},
                )
        elif kind == "observer.activeSpeaker":
            local = self.rooms.get(str(note.get("roomId")))
            if local is None or note.get("observerId") != local.speaker_observer:
                return
            producer_id = str(note.get("producerId"))
            owner = next(
                (p for p in await self._all_producers(local.name) if p.producer_id == producer_id),
                None,
            )
            if owner is not None:
                for peer in list(local.peers.values()):
                    await peer.send_event(
                        "activeSpeaker", {"peerId": owner.peer_id, "producerId": producer_id}
                    )
        elif kind == "worker.died":
            # `{room}~{n}` is a further router of a spanning room: the room rejoins whole.
            for room in {str(r).split("~")[0] for r in note.get("roomIds") or []}:
                await self._rejoin_room(room, "the media server restarted")

    async def _all_producers(self, room: str) -> list[ProducerRecord]:
        with contextlib.suppress(*REDIS_ERRORS):
            return await self.store.list_producers(room)
        return []

    async def _place(self, name: str) -> RoomRecord | None:
        """Keep the room on its node while that is alive, else the least-loaded live one."""
        candidate = await self.pool.least_loaded()
        return await self.store.place_room(
            name, lambda r: r.node_id if self.pool.alive(r.node_id) else candidate
        )

    async def _on_node_down(self, node_id: str) -> None:
        """An SFU node's heartbeat stopped: its rooms move, their peers rejoin there."""
        for local in [r for r in self.rooms.values() if r.node_id == node_id]:
            target: str | None = None
            try:
                placed = await self._place(local.name)
                target = placed.node_id if placed is not None else None
            except REDIS_ERRORS as e:
                log.warning("room=%s not re-placed after node=%s down: %s", local.name, node_id, e)
            log.warning("room=%s moves from node=%s to node=%s", local.name, node_id, target)
            await self._rejoin_room(local.name, f"SFU node {node_id} is down", node=target)

    async def _rejoin_room(self, room: str, reason: str, *, node: str | None = None) -> None:
        """The room's router is gone: every local peer must join again."""
        local = self.rooms.pop(room, None)
        if local is None:
            return
        log.warning("router lost room=%s: asking %d peers to rejoin", room, len(local.peers))
        for peer in list(local.peers.values()):
            with contextlib.suppress(*REDIS_ERRORS):
                for producer_id in peer.producers:
                    await self.store.remove_producer(room, producer_id)
                    await self.store.remove_pipes(room, producer_id)
                await self.store.remove_peer(room, peer.peer_id)
            for consumer_id in peer.consumers:
                self._consumer_owner.pop(consumer_id, None)
            peer.transports.clear()
            peer.producers.clear()
            peer.consumers.clear()
            data: Json = {"reason": reason}
            if node is not None:
                data["node"] = node
            await peer.send_event("rejoin", data)

    # redis ---------------------------------------------------------------------
    async def _redis(self, coro: Awaitable[T]) -> T:
        try:
            return await coro
        except REDIS_ERRORS as e:
            raise Unavailable(f"shared state (Redis) is unavailable: {e}") from None

    async def _sfu(self, coro: Awaitable[T]) -> T:
        try:
            return await coro
        except SfuConnectionError as e:
            raise Unavailable(f"the media server is unavailable: {e}") from None

    async def _watch_redis(self) -> None:
        """Notice a Redis restart (new run_id or an outage) and write our state back."""
        run_id: str | None = None
        while True:
            try:
                info = await self.store.redis.info("server")
                current = str(info.get("run_id"))
                if run_id is not None and current != run_id:
                    await self.resync()
                run_id = current
                self._redis_ok.set()
                await self.store.heartbeat(self.instance_id, 5)
            except REDIS_ERRORS:
                if self._redis_ok.is_set():
                    log.warning("redis unreachable; will resync when it is back")
                self._redis_ok.clear()
                run_id = run_id or "lost"
            await asyncio.sleep(0.5)

    async def _pin_room(self, local: LocalRoom) -> None:
        """Write a room back on the node and router it runs on here (after a Redis loss)."""
        room = await self.store.get_room(local.name) or RoomRecord(name=local.name)
        if room.node_id != local.node_id:
            room.node_id = None  # placed (and counted on its node) just below
        await self.store.put_room(room)
        node = local.node_id
        placed = await self.store.place_room(local.name, lambda _r: node)
        if placed is not None and placed.router_id != local.router_id:
            placed.router_id = local.router_id
            await self.store.put_room(placed)

    async def resync(self) -> None:
        """Write this instance's rooms, peers and producers back into Redis."""
        for local in list(self.rooms.values()):
            await self._pin_room(local)
            for peer in local.peers.values():
                await self.store.put_peer(local.name, peer.record())
                for record in peer.producers.values():
                    await self.store.put_producer(local.name, record)
        log.info("resynced %d rooms into redis", len(self.rooms))


def _producer_event(p: ProducerRecord) -> Json:
    return {
        "producerId": p.producer_id,
        "peerId": p.peer_id,
        "identity": p.identity,
        "kind": p.kind,
        "source": p.source,
        "paused": p.paused,
    }
