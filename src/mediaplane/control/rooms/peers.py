"""What this control-plane instance holds: its participants and the rooms they are in.

A `LocalPeer` is a participant connected here (a signaling socket, a WHIP/WHEP
session, an injection); it owns the SFU transports, producers and consumers it
created, and refuses ids it does not own. A `LocalRoom` is a room with at
least one local peer: its router on the SFU node hosting it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mediaplane.control.auth import Principal, TrackSource
from mediaplane.control.errors import NotFound
from mediaplane.control.rooms.lastn import SpeakerOrder
from mediaplane.sfu import SfuClient
from mediaplane.state.models import PeerKind, PeerRecord, ProducerRecord
from mediaplane.wire.ids import Json
from mediaplane.wire.room_events import PeerInfo

# WebSocket close codes a peer is disconnected with (docs/signaling.md).
CLOSE_KICKED = 4003
CLOSE_ROOM_DELETED = 4004
CLOSE_REPLACED = 4009
CLOSE_RESUMED = 4011  # the session resumed on another socket

EventSink = Callable[[str, Json], Awaitable[None]]
Disconnect = Callable[[int, str], Awaitable[None]]


@dataclass
class LocalPeer:
    peer_id: str
    room: str
    principal: Principal
    display_name: str
    instance: str
    send_event: EventSink
    disconnect: Disconnect
    joined_at: float = field(default_factory=time.time)
    transports: dict[str, str] = field(default_factory=dict)  # id -> "send" | "recv"
    producers: dict[str, ProducerRecord] = field(default_factory=dict)
    consumers: dict[str, str] = field(default_factory=dict)  # consumer id -> producer id
    # Video consumers -> their producer's layer heights (layers.py); those the peer paused
    # itself, and those whose tile is hidden (paused on the SFU while either holds).
    video_consumers: dict[str, list[int]] = field(default_factory=dict)
    client_paused: set[str] = field(default_factory=set)
    hidden: set[str] = field(default_factory=set)
    # Video consumers -> (the producer's peer, its source), the height of their tile last
    # reported, and the spatial layer last asked of the SFU (Last-N redoes it, lastn.py).
    video_owners: dict[str, tuple[str, TrackSource]] = field(default_factory=dict)
    tile_heights: dict[str, int] = field(default_factory=dict)
    asked_layers: dict[str, int] = field(default_factory=dict)
    priorities: dict[str, int] = field(default_factory=dict)  # asked of the SFU (lastn.py)
    rtp_capabilities: Json | None = None
    kind: PeerKind = "participant"
    router_id: str | None = None  # a router of its room other than the first (spanning)
    # Resumable (signaling) peers: the SHA-256 of its current resume token, and since
    # when its socket is gone (None while connected); see rooms/resume.py.
    resume_hash: str | None = None
    away_since: float | None = None

    @property
    def identity(self) -> str:
        return self.principal.identity

    def record(self) -> PeerRecord:
        return PeerRecord(
            peer_id=self.peer_id,
            identity=self.identity,
            name=self.display_name,
            instance=self.instance,
            kind=self.kind,
            router_id=self.router_id,
            joined_at=self.joined_at,
        )

    def info(self) -> PeerInfo:
        """What other participants see of this peer."""
        return PeerInfo(
            peer_id=self.peer_id,
            identity=self.identity,
            display_name=self.display_name,
            kind=self.kind,
        )

    def public(self) -> Json:
        """`info()` as JSON (join replies, webhooks)."""
        return self.info().model_dump(mode="json")

    # ownership: a peer acts only on the SFU objects it created ---------------------
    def owns_transport(self, transport_id: str) -> str:
        """The transport's direction ("send" | "recv")."""
        if transport_id not in self.transports:
            raise NotFound(f"no transport {transport_id} for this peer")
        return self.transports[transport_id]

    def owns_consumer(self, consumer_id: str) -> str:
        if consumer_id not in self.consumers:
            raise NotFound(f"no consumer {consumer_id} for this peer")
        return consumer_id

    def owns_producer(self, producer_id: str) -> ProducerRecord:
        record = self.producers.get(producer_id)
        if record is None:
            raise NotFound(f"no producer {producer_id} for this peer")
        return record

    def forget_consumer(self, consumer_id: str) -> str | None:
        """A consumer closed: its producer's id (None if it was not this peer's)."""
        self.video_consumers.pop(consumer_id, None)
        self.client_paused.discard(consumer_id)
        self.hidden.discard(consumer_id)
        self.video_owners.pop(consumer_id, None)
        self.tile_heights.pop(consumer_id, None)
        self.asked_layers.pop(consumer_id, None)
        self.priorities.pop(consumer_id, None)
        return self.consumers.pop(consumer_id, None)

    def forget_media(self) -> None:
        """Its transports are gone (closed, or lost with their router)."""
        self.transports.clear()
        self.producers.clear()
        self.consumers.clear()
        self.video_consumers.clear()
        self.client_paused.clear()
        self.hidden.clear()
        self.asked_layers.clear()
        self.priorities.clear()
        self.tile_heights.clear()
        self.video_owners.clear()


@dataclass
class LocalRoom:
    """A room with peers here: its first router, on the SFU node that hosts it."""

    name: str
    router_id: str
    rtp_capabilities: Json
    sfu: SfuClient
    node_id: str
    peers: dict[str, LocalPeer] = field(default_factory=dict)
    speaker_observer: str | None = None
    speakers: SpeakerOrder = field(default_factory=SpeakerOrder)
    # Joins (or adoptions) between placing and adding their peer (Placement.joining).
    joining: int = 0

    @property
    def unused(self) -> bool:
        """No peer here and none on its way in: the room may be dropped here."""
        return not self.peers and self.joining == 0
