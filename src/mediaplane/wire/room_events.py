"""Room events: what one control-plane instance tells every instance about a room.

Channel `mp:room:{room}:events` (state/keys.py), one JSON object per message,
`type` naming the event. Every event carries the envelope `room`, `instance`
(the control plane that published it) and `origin` (the peer that caused it,
which is not told of its own event; null when no peer did). The other fields
are camelCase: the events marked `forwarded` go on as they are to this
room's participants as signaling events (docs/signaling.md), `data` being
every field past the envelope.

Each model below says what the instances that receive it do; the events
that are not `forwarded` are acted on by the instance owning the peer they name.
docs/redis-keys.md has the same as a table.

Published and received in one place: control/rooms/events.py.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

from mediaplane.wire.ids import Json

TrackKind = Literal["audio", "video"]
TrackSource = Literal["audio", "video", "screen"]
ENVELOPE = frozenset({"type", "room", "instance", "origin"})


class _Event(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )
    forwarded: ClassVar[bool] = True
    """Sent on to the room's participants on every instance."""

    room: str
    instance: str = ""
    """Filled in by the publisher (control/rooms/events.py)."""
    origin: str | None = None

    def data(self) -> Json:
        """The signaling event's `data`: every field past the envelope."""
        return self.model_dump(mode="json", exclude=set(ENVELOPE))


class PeerInfo(BaseModel):
    """What other participants see of a peer."""

    model_config = _Event.model_config
    peer_id: str
    identity: str
    display_name: str
    kind: Literal["participant", "ingress"]


class PeerJoined(_Event):
    """Someone joined the room (on any instance). Forwarded."""

    type: Literal["peerJoined"] = "peerJoined"
    peer: PeerInfo


class PeerLeft(_Event):
    """Someone left: left, dropped (`disconnected`), removed, replaced. Forwarded."""

    type: Literal["peerLeft"] = "peerLeft"
    peer_id: str
    reason: str


class PeerReconnecting(_Event):
    """Someone's signaling socket dropped: it may resume within the grace period
    (docs/signaling.md#resuming-a-session); its tracks stay. Forwarded."""

    type: Literal["peerReconnecting"] = "peerReconnecting"
    peer_id: str


class PeerReconnected(_Event):
    """Someone resumed its session (same peer id, same tracks). Forwarded."""

    type: Literal["peerReconnected"] = "peerReconnected"
    peer_id: str


class NewProducer(_Event):
    """Someone published a track. Forwarded; an audio track joins the room's
    active-speaker observer on the other instances."""

    type: Literal["newProducer"] = "newProducer"
    producer_id: str
    peer_id: str
    identity: str
    kind: TrackKind
    source: TrackSource
    paused: bool


class ProducerClosed(_Event):
    """A track ended. Forwarded."""

    type: Literal["producerClosed"] = "producerClosed"
    producer_id: str
    peer_id: str


class ProducerPaused(_Event):
    """A track was muted (`byAdmin`: by the REST API). Forwarded; the owning
    instance's record of the track follows."""

    type: Literal["producerPaused"] = "producerPaused"
    producer_id: str
    peer_id: str
    by_admin: bool | None = Field(default=None, exclude_if=lambda v: v is None)


class ProducerResumed(_Event):
    """A track was unmuted; as ProducerPaused."""

    type: Literal["producerResumed"] = "producerResumed"
    producer_id: str
    peer_id: str
    by_admin: bool | None = Field(default=None, exclude_if=lambda v: v is None)


class RoomCreated(_Event):
    """The room was created through the REST API. Forwarded (informational)."""

    type: Literal["roomCreated"] = "roomCreated"


class RecordingChanged(_Event):
    """A recording of someone in the room started (`active`) or ended. Forwarded
    (the call page's recording indicator)."""

    type: Literal["recording"] = "recording"
    recording_id: str
    identity: str
    active: bool


class Kick(_Event):
    """An admin removed `identity`: the owning instance disconnects it (4003)."""

    forwarded: ClassVar[bool] = False
    type: Literal["kick"] = "kick"
    identity: str


class Replaced(_Event):
    """The peer's identity joined again: its instance closes the old session (4009)."""

    forwarded: ClassVar[bool] = False
    type: Literal["replaced"] = "replaced"
    peer_id: str


class Handover(_Event):
    """The peer resumed through instance `instance`: any other instance holding it
    forgets it there without a leave (its SFU objects go on) and closes its old socket
    (4011)."""

    forwarded: ClassVar[bool] = False
    type: Literal["handover"] = "handover"
    peer_id: str


class GrantsChanged(_Event):
    """An admin changed `identity`'s grants: the owning instance applies them."""

    forwarded: ClassVar[bool] = False
    type: Literal["grants"] = "grants"
    identity: str
    grants: Json
    """A `Grants` (control/auth.py) as JSON; the receiver validates it."""


class RoomDeleted(_Event):
    """The room was deleted: every instance disconnects its peers in it (4004)."""

    forwarded: ClassVar[bool] = False
    type: Literal["roomDeleted"] = "roomDeleted"


RoomEvent = Annotated[
    PeerJoined
    | PeerLeft
    | PeerReconnecting
    | PeerReconnected
    | NewProducer
    | ProducerClosed
    | ProducerPaused
    | ProducerResumed
    | RoomCreated
    | RecordingChanged
    | Kick
    | Replaced
    | Handover
    | GrantsChanged
    | RoomDeleted,
    Field(discriminator="type"),
]
ROOM_EVENT: TypeAdapter[RoomEvent] = TypeAdapter(RoomEvent)
"""`ROOM_EVENT.validate_json(raw)`: one message off the channel, typed."""
