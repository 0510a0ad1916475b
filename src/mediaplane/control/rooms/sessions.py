"""One peer's session in a room: join, media, leave. Used by signaling and WHIP alike.

The callers (control/signaling/session.py, control/whip/service.py,
injections) have checked the token's grants; this checks the rest: the peer
has joined, the ids it names are its own (LocalPeer.owns_*), a producer goes
on a send transport and a consumer on a recv one, and the peer and its room are
under their caps (control/limits.py) before the SFU is asked. Redis and SFU connection
losses become `Unavailable` here (guard.py), SFU refusals stay `SfuRpcError`
for the caller's error point.

Ownership: a peer's SFU objects are closed when it leaves (its transports:
with them its producers and consumers); `consumer_owner` maps every consumer
made here to its peer, for the SFU's consumer notifications.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mediaplane.control.auth import Grants, Principal, TrackSource
from mediaplane.control.errors import BadRequest, InvalidState, NotFound, RoomFull
from mediaplane.control.limits import Limits
from mediaplane.control.rooms.events import RoomEvents
from mediaplane.control.rooms.guard import REDIS_ERRORS, redis_call, sfu_call
from mediaplane.control.rooms.lastn import PRIORITY_CAMERA, priority_of, spatial_with_last_n
from mediaplane.control.rooms.layers import NO_CAPS, Bitrates, layer_heights, spatial_for
from mediaplane.control.rooms.peers import CLOSE_REPLACED, LocalPeer, LocalRoom
from mediaplane.control.rooms.placement import Placement
from mediaplane.sfu import SfuClient, SfuError, SfuRpcError
from mediaplane.state.models import ProducerRecord, RoomRecord
from mediaplane.state.store import StateStore
from mediaplane.wire.ids import Json
from mediaplane.wire.room_events import (
    NewProducer,
    PeerJoined,
    PeerLeft,
    ProducerClosed,
    ProducerPaused,
    ProducerResumed,
    Replaced,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Notify = Callable[[str, Json], object]
# Called when a peer's media is forgotten: (peer, the leave reason or None: rejoin).
OnGone = Callable[[LocalPeer, str | None], Awaitable[None]]


def new_producer_event(room: str, p: ProducerRecord, *, origin: str | None) -> NewProducer:
    return NewProducer(
        room=room, origin=origin, producer_id=p.producer_id, peer_id=p.peer_id,
        identity=p.identity, kind=p.kind, source=p.source, paused=p.paused,
    )  # fmt: skip


class Sessions:
    def __init__(
        self,
        store: StateStore,
        placement: Placement,
        events: RoomEvents,
        *,
        notify: Notify,
        counts: Counter[str],
        auto_create_rooms: bool = True,
        joined_room_empty_timeout_s: int = 60,
        limits: Limits | None = None,
        bitrates: Bitrates = NO_CAPS,
        last_n: int = 0,
        video_codec: str = "vp8",
    ) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.placement = placement
        self.events = events
        self.rooms = placement.rooms
        self.notify = notify  # webhooks: what this instance's peers do
        self.counts = counts
        self.auto_create_rooms = auto_create_rooms
        self.joined_room_empty_timeout_s = joined_room_empty_timeout_s
        self.bitrates = bitrates
        self.video_codec = video_codec  # the join reply's: the call page's camera codec
        self.last_n = last_n  # Last-N (lastn.py): 0 forwards every camera at its tile's layer
        self.consumer_owner: dict[str, LocalPeer] = {}
        self.on_gone: list[OnGone] = []  # rooms/resume.py

    # where a peer is -------------------------------------------------------------
    def room_of(self, peer: LocalPeer) -> LocalRoom:
        local = self.rooms.get(peer.room)
        if local is None or peer.peer_id not in local.peers:
            raise InvalidState("join the room first")
        return local

    def is_joined(self, peer: LocalPeer) -> bool:
        local = self.rooms.get(peer.room)
        return local is not None and peer.peer_id in local.peers

    def local_peer(self, room: str, peer_id: str) -> LocalPeer | None:
        local = self.rooms.get(room)
        return local.peers.get(peer_id) if local is not None else None

    def forget_here(self, peer: LocalPeer) -> None:
        """Drop a peer from this instance only: no leave, its SFU objects and Redis
        records stay (another instance serves it now: rooms/resume.py)."""
        local = self.rooms.get(peer.room)
        if local is None or local.peers.get(peer.peer_id) is not peer:
            return
        del local.peers[peer.peer_id]
        for consumer_id in peer.consumers:
            if self.consumer_owner.get(consumer_id) is peer:
                del self.consumer_owner[consumer_id]
        if local.unused:
            self.placement.drop_local_room(local)

    async def forget_transport(self, peer: LocalPeer, transport_id: str) -> None:
        """A transport of the peer that is gone in the SFU (its consumers with it)."""
        peer.transports.pop(transport_id, None)
        with contextlib.suppress(*REDIS_ERRORS):
            await self.store.remove_peer_media(peer.room, peer.peer_id, f"transport:{transport_id}")

    async def _keep_media(self, peer: LocalPeer, field: str, value: str) -> None:
        """A resumable peer's SFU objects, for the instance that may adopt it."""
        if peer.resume_hash is not None:
            await redis_call(self.store.put_peer_media(peer.room, peer.peer_id, field, value))

    def sfu_of(self, peer: LocalPeer) -> SfuClient:
        """The SFU client of the node hosting this peer's room."""
        return self.room_of(peer).sfu

    # joining and leaving -------------------------------------------------------------
    async def join(self, peer: LocalPeer) -> Json:
        """Add a peer; returns what the join response carries."""
        name = peer.room
        async with self.placement.lock(name):
            room = await self._room_to_join(name)
            # One session per identity: a rejoin replaces the old one (LiveKit does the same).
            for other in await redis_call(self.store.list_peers(name)):
                if other.identity == peer.identity:
                    await self.events.publish(Replaced(room=name, peer_id=other.peer_id))
                    await self.replace(name, other.peer_id)
                    await redis_call(self.store.remove_peer(name, other.peer_id))
            capacity = self.limits.room_capacity(room.max_participants)
            if await redis_call(self.store.count_peers(name)) >= capacity:
                raise RoomFull(f"room {name!r} is full ({capacity} participants)")
            async with self.placement.joining(room) as local:
                caps = await self.placement.assign_router(local, peer)
                await redis_call(self.store.put_peer(name, peer.record()))
                if await redis_call(self.store.count_peers(name)) > capacity:
                    await redis_call(self.store.remove_peer(name, peer.peer_id))
                    raise RoomFull(f"room {name!r} is full ({capacity} participants)")
                local.peers[peer.peer_id] = peer
                local.speakers.joined(peer.peer_id)
                self.placement.cancel_release(name)
        peers = [
            p for p in await redis_call(self.store.list_peers(name)) if p.peer_id != peer.peer_id
        ]
        producers = [
            p
            for p in await redis_call(self.store.list_producers(name))
            if p.peer_id != peer.peer_id
        ]
        await self.events.publish(PeerJoined(room=name, origin=peer.peer_id, peer=peer.info()))
        self.notify("participant.joined", {"room": name, **peer.public()})
        log.info("peer joined room=%s peer=%s identity=%s", name, peer.peer_id, peer.identity)
        return {
            "peerId": peer.peer_id,
            "roomId": name,
            "routerRtpCapabilities": caps,
            "videoCodec": self.video_codec,
            "peers": [
                {"peerId": p.peer_id, "identity": p.identity, "displayName": p.name, "kind": p.kind}
                for p in peers
            ],
            "producers": [new_producer_event(name, p, origin=None).data() for p in producers],
        }

    async def _room_to_join(self, name: str) -> RoomRecord:
        room = await redis_call(self.store.get_room(name))
        if room is not None:
            return room
        if not self.auto_create_rooms:
            raise NotFound(f"room {name!r} does not exist")
        # A room a join makes goes away with its last participant (placement.py).
        made = RoomRecord(name=name, auto=True, empty_timeout_s=self.joined_room_empty_timeout_s)
        if await redis_call(self.store.create_room(made)):
            self.notify("room.created", {"room": name, "auto": True})
        return await self.placement.get_room(name)

    async def before_join(self, name: str, check: Callable[[Json], T]) -> T:
        """`check(the RTP capabilities a joining participant gets)`, before joining: an
        offer refused there must not replace a live session of the same identity. The
        room is placed when it has no router here; if `check` raises, that is undone."""
        try:
            async with self.placement.lock(name):
                room = await self.placement.get_room(name)
                caps = (await self.placement.local_room(room)).rtp_capabilities
            return check(caps)
        except Exception:
            await self.placement.forget_if_empty(name)
            raise

    async def leave(self, peer: LocalPeer, reason: str) -> None:
        """Remove a peer: close its SFU objects, tell the others. Idempotent."""
        local = self.rooms.get(peer.room)
        # Not here (any more): it left, or resumed through another instance.
        if local is None or local.peers.get(peer.peer_id) is not peer:
            return
        del local.peers[peer.peer_id]
        local.speakers.left(peer.peer_id)
        await self.teardown(peer, close_on=local.sfu, left_reason=reason)
        self.notify("participant.left", {"room": peer.room, "reason": reason, **peer.public()})
        log.info("peer left room=%s peer=%s reason=%s", peer.room, peer.peer_id, reason)
        if local.unused:
            self.placement.drop_local_room(local)
        with contextlib.suppress(*REDIS_ERRORS):
            if await self.store.count_peers(peer.room) == 0:
                self.placement.schedule_release(peer.room)

    async def teardown(
        self, peer: LocalPeer, *, close_on: SfuClient | None, left_reason: str | None
    ) -> None:
        """Forget a peer's media: here, in Redis and (`close_on`) in the SFU.

        `left_reason`: announce producerClosed for each track, then peerLeft;
        None when the peer stays and is asked to rejoin (its router is gone).
        """
        for consumer_id in list(peer.consumers):
            self.consumer_owner.pop(consumer_id, None)
        if close_on is not None:
            for transport_id in list(peer.transports):
                with contextlib.suppress(SfuError):
                    await close_on.close_transport(transport_id)
        with contextlib.suppress(*REDIS_ERRORS):
            for producer_id in list(peer.producers):
                await self.store.remove_producer(peer.room, producer_id)
                await self.store.remove_pipes(peer.room, producer_id)
                if left_reason is not None:
                    await self._closed(peer, producer_id)
            await self.store.remove_peer(peer.room, peer.peer_id)
            if left_reason is not None:
                await self.events.publish(
                    PeerLeft(
                        room=peer.room,
                        origin=peer.peer_id,
                        peer_id=peer.peer_id,
                        reason=left_reason,
                    )
                )
        for gone in list(self.on_gone):
            await gone(peer, left_reason)
        peer.forget_media()

    async def kick(self, room: str, identity: str | None, code: int, reason: str) -> None:
        """Disconnect this instance's peers of `identity` (None: all) in `room`."""
        local = self.rooms.get(room)
        if local is None:
            return
        for peer in list(local.peers.values()):
            if identity is None or peer.identity == identity:
                await self.leave(peer, reason)
                await peer.disconnect(code, reason)

    async def replace(self, room: str, peer_id: str) -> None:
        """The peer's identity joined again (here or elsewhere): the old session ends."""
        local = self.rooms.get(room)
        if local is not None and (peer := local.peers.get(peer_id)) is not None:
            await self.leave(peer, "replaced by a new session of the same identity")
            await peer.disconnect(CLOSE_REPLACED, "replaced by a new session")

    async def apply_grants(self, room: str, identity: str, grants: Grants) -> None:
        """New grants for this instance's peers of `identity`; tracks no longer allowed end."""
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

    # transports ------------------------------------------------------------------------
    async def create_transport(
        self, peer: LocalPeer, direction: str, *, router_id: str | None = None
    ) -> Json:
        """A WebRTC transport on the peer's router (or `router_id`: a WHEP session's own)."""
        local = self.room_of(peer)
        self.limits.check_transport(len(peer.transports))
        info = await sfu_call(
            local.sfu.create_webrtc_transport(
                router_id or peer.router_id or local.router_id,
                app_data={"peerId": peer.peer_id, "direction": direction},
            )
        )
        peer.transports[info.transport_id] = direction
        if direction == "send" and self.bitrates.max_incoming:
            await sfu_call(
                local.sfu.set_max_incoming_bitrate(info.transport_id, self.bitrates.max_incoming)
            )
        if direction == "recv" and self.bitrates.max_outgoing:
            await sfu_call(
                local.sfu.set_max_outgoing_bitrate(info.transport_id, self.bitrates.max_outgoing)
            )
        await self._keep_media(peer, f"transport:{info.transport_id}", direction)
        return info.model_dump(by_alias=True)

    async def connect_transport(self, peer: LocalPeer, transport_id: str, dtls: Json) -> None:
        sfu = self.sfu_of(peer)
        peer.owns_transport(transport_id)
        await sfu_call(sfu.connect_transport(transport_id, dtls))

    async def restart_ice(self, peer: LocalPeer, transport_id: str) -> Json:
        """The transport's new ICE parameters."""
        sfu = self.sfu_of(peer)
        peer.owns_transport(transport_id)
        return await sfu_call(sfu.restart_ice(transport_id))

    async def stats(self, peer: LocalPeer) -> Json:
        """mediasoup stats of the peer's transports, producers and consumers, by id."""
        sfu = self.sfu_of(peer)
        out: Json = {"transports": {}, "producers": {}, "consumers": {}}
        for tid in peer.transports:
            out["transports"][tid] = await sfu_call(sfu.get_stats("transport", tid))
        for pid in peer.producers:
            out["producers"][pid] = await sfu_call(sfu.get_stats("producer", pid))
        for cid in peer.consumers:
            out["consumers"][cid] = await sfu_call(sfu.get_stats("consumer", cid))
        return out

    # producing -------------------------------------------------------------------------
    async def produce(
        self,
        peer: LocalPeer,
        transport_id: str,
        kind: str,
        rtp_parameters: Json,
        source: TrackSource,
        paused: bool,
        video_height: int | None = None,
    ) -> str:
        local = self.room_of(peer)
        if peer.owns_transport(transport_id) != "send":
            raise InvalidState("produce needs a send transport")
        of_kind = sum(1 for p in peer.producers.values() if p.kind == kind)
        in_room = await redis_call(self.store.count_producers(peer.room))
        self.limits.check_producer(kind, of_kind, in_room)
        info = await sfu_call(
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
            layer_heights=layer_heights(rtp_parameters, video_height) if kind == "video" else [],
        )  # fmt: skip
        peer.producers[info.producer_id] = record
        await redis_call(self.store.put_producer(peer.room, record))
        if kind == "audio" and local.speaker_observer and peer.router_id is None:
            with contextlib.suppress(SfuRpcError):
                await local.sfu.observer_add_producer(local.speaker_observer, info.producer_id)
        await self.events.publish(new_producer_event(peer.room, record, origin=peer.peer_id))
        self.counts[f"produce.{info.kind}"] += 1
        log.info(
            "producer created room=%s peer=%s producer=%s kind=%s",
            peer.room,
            peer.peer_id,
            info.producer_id,
            kind,
        )
        return info.producer_id

    async def set_producer_paused(self, peer: LocalPeer, producer_id: str, paused: bool) -> None:
        """The peer mutes or unmutes its own track."""
        record = peer.owns_producer(producer_id)
        await self.set_paused(peer.room, record, paused, self.sfu_of(peer), origin=peer.peer_id)

    async def set_paused(
        self,
        room: str,
        record: ProducerRecord,
        paused: bool,
        sfu: SfuClient,
        *,
        origin: str | None = None,
        by_admin: bool = False,
    ) -> None:
        """Pause or resume a producer in the SFU, in Redis, and tell the room (mute)."""
        producer_id = record.producer_id
        await sfu_call(
            sfu.pause_producer(producer_id) if paused else sfu.resume_producer(producer_id)
        )
        record.paused = paused
        await redis_call(self.store.put_producer(room, record))
        event = ProducerPaused if paused else ProducerResumed
        await self.events.publish(
            event(
                room=room, origin=origin, producer_id=producer_id, peer_id=record.peer_id,
                by_admin=True if by_admin else None,
            )
        )  # fmt: skip

    async def close_producer(self, peer: LocalPeer, producer_id: str) -> None:
        peer.owns_producer(producer_id)
        await sfu_call(self.sfu_of(peer).close_producer(producer_id))
        peer.producers.pop(producer_id, None)
        await redis_call(self.store.remove_producer(peer.room, producer_id))
        await redis_call(self.store.remove_pipes(peer.room, producer_id))
        await self._closed(peer, producer_id)

    async def _closed(self, peer: LocalPeer, producer_id: str) -> None:
        await self.events.publish(
            ProducerClosed(
                room=peer.room, origin=peer.peer_id, producer_id=producer_id, peer_id=peer.peer_id
            )
        )

    # consuming -------------------------------------------------------------------------
    async def consume(
        self, peer: LocalPeer, transport_id: str, producer_id: str, rtp_capabilities: Json
    ) -> Json:
        local = self.room_of(peer)
        if peer.owns_transport(transport_id) != "recv":
            raise InvalidState("consume needs a recv transport")
        self.limits.check_consumer(len(peer.consumers))
        producer = await redis_call(self.store.get_producer(peer.room, producer_id))
        if producer is None:
            raise NotFound(f"producer {producer_id} is not in this room")
        if producer.peer_id == peer.peer_id:
            raise InvalidState("a peer does not consume its own producer")
        source_id = await self.placement.usable_producer(
            peer.room, local.sfu, producer, peer.router_id or local.router_id
        )
        info = await sfu_call(
            local.sfu.consume(
                transport_id,
                source_id,
                rtp_capabilities,
                paused=True,
                app_data={"peerId": peer.peer_id},
            )
        )
        peer.consumers[info.consumer_id] = producer_id
        peer.client_paused.add(info.consumer_id)  # made paused: the client resumes it
        if info.kind == "video":
            peer.video_consumers[info.consumer_id] = producer.layer_heights
            peer.video_owners[info.consumer_id] = (producer.peer_id, producer.source)
        self.consumer_owner[info.consumer_id] = peer
        await self._keep_media(peer, f"consumer:{info.consumer_id}", producer_id)
        self.counts[f"consume.{info.kind}"] += 1
        if info.kind == "video":  # this one's priority, and the others' (a new camera)
            await self.relayer(local, peer, "a consumer added")
        out = info.model_dump(by_alias=True)
        # The room's producer id, also when a pipe of it is what is consumed.
        out.update(
            {"producerId": producer_id, "peerId": producer.peer_id, "source": producer.source}
        )
        return out

    async def resume_consumer(self, peer: LocalPeer, consumer_id: str) -> None:
        """The client is ready for media; a hidden tile's consumer stays paused until shown."""
        sfu = self.sfu_of(peer)
        owned = peer.owns_consumer(consumer_id)
        peer.client_paused.discard(owned)
        if owned not in peer.hidden:
            await sfu_call(sfu.resume_consumer(owned))

    async def pause_consumer(self, peer: LocalPeer, consumer_id: str) -> None:
        sfu = self.sfu_of(peer)
        owned = peer.owns_consumer(consumer_id)
        peer.client_paused.add(owned)
        await sfu_call(sfu.pause_consumer(owned))

    async def set_preferred_layers(
        self, peer: LocalPeer, consumer_id: str, spatial: int, temporal: int | None
    ) -> None:
        sfu = self.sfu_of(peer)
        owned = peer.owns_consumer(consumer_id)
        layers = len(peer.video_consumers.get(owned, [])) or 1
        if spatial >= layers:
            raise BadRequest(f"spatialLayer {spatial}: the producer has {layers} layer(s)")
        await sfu_call(sfu.set_preferred_layers(owned, spatial, temporal))

    async def set_track_settings(
        self, peer: LocalPeer, consumer_id: str, visible: bool, height: int
    ) -> Json:
        """A subscriber's tile for a video consumer: hidden pauses it on the SFU; shown,
        it resumes (with a key frame) at the layer the tile's height needs (layers.py)."""
        sfu = self.sfu_of(peer)
        owned = peer.owns_consumer(consumer_id)
        if owned not in peer.video_consumers:
            raise InvalidState("trackSettings is for video consumers")
        if not visible:
            if owned not in peer.hidden:
                peer.hidden.add(owned)
                await sfu_call(sfu.pause_consumer(owned))
            return {"paused": True, "spatialLayer": None}
        peer.tile_heights[owned] = height
        local = self.room_of(peer)
        spatial = self._layer_for(local, peer, owned)
        if spatial is not None:
            peer.asked_layers[owned] = spatial
            await sfu_call(sfu.set_preferred_layers(owned, spatial))
        # Last-N ranks the cameras this peer shows: a new tile may demote another.
        await self.relayer(local, peer, "a tile changed")
        if owned in peer.hidden:
            peer.hidden.discard(owned)
            if owned not in peer.client_paused:
                await sfu_call(sfu.resume_consumer(owned))
                await sfu_call(sfu.request_key_frame(owned))
        return {"paused": owned in peer.client_paused, "spatialLayer": spatial}

    def _layer_for(self, local: LocalRoom, peer: LocalPeer, consumer_id: str) -> int | None:
        """The spatial layer for a shown tile: by its height (layers.py), the lowest for
        a camera of someone not among the last N speakers (lastn.py)."""
        heights = peer.video_consumers.get(consumer_id) or []
        height = peer.tile_heights.get(consumer_id)
        if not heights or height is None:
            return None
        spatial = spatial_for(heights, height)
        if self.last_n <= 0:
            return spatial
        if consumer_id not in peer.video_owners:
            return spatial  # its producer's owner unknown here (not consumed through consume())
        owner, source = peer.video_owners[consumer_id]
        cameras = [o for o, src in peer.video_owners.values() if src == "video"]
        forwarded = local.speakers.last(cameras, self.last_n)
        return spatial_with_last_n(spatial, source, owner, forwarded)

    async def speaker_changed(self, local: LocalRoom, peer_id: str) -> None:
        """`peer_id` is the dominant speaker: each video consumer here whose layer (Last-N)
        or priority that changes is asked its new one."""
        if not local.speakers.spoke(peer_id):
            return
        for peer in list(local.peers.values()):
            await self.relayer(local, peer, f"speaker={peer_id}")

    async def relayer(self, local: LocalRoom, peer: LocalPeer, why: str) -> None:
        """Ask the SFU again, where they changed (who spoke; a camera added or closed), the
        priority of each of the peer's video consumers and, with Last-N on, the layer of
        each of its shown tiles (lastn.py)."""
        cameras = [o for o, src in peer.video_owners.values() if src == "video"]
        speaker = next(iter(local.speakers.last(cameras, 1)), None)
        for consumer_id, (owner, source) in list(peer.video_owners.items()):
            priority = priority_of(source, owner, speaker)
            if peer.priorities.get(consumer_id, PRIORITY_CAMERA) == priority:
                continue
            peer.priorities[consumer_id] = priority
            with contextlib.suppress(SfuError):
                await local.sfu.set_priority(consumer_id, priority)
            log.info("priority room=%s peer=%s consumer=%s priority=%d (%s)",
                     local.name, peer.peer_id, consumer_id, priority, why)  # fmt: skip
        if self.last_n <= 0:
            return
        for consumer_id in list(peer.tile_heights):
            if consumer_id in peer.hidden:
                continue
            spatial = self._layer_for(local, peer, consumer_id)
            if spatial is None or peer.asked_layers.get(consumer_id) == spatial:
                continue
            peer.asked_layers[consumer_id] = spatial
            with contextlib.suppress(SfuError):
                await local.sfu.set_preferred_layers(consumer_id, spatial)
            log.info("last-n layer room=%s peer=%s consumer=%s layer=%d (%s)",
                     local.name, peer.peer_id, consumer_id, spatial, why)  # fmt: skip

    async def request_key_frame(self, peer: LocalPeer, consumer_id: str) -> None:
        sfu = self.sfu_of(peer)
        owned = peer.owns_consumer(consumer_id)
        await sfu_call(sfu.request_key_frame(owned))
