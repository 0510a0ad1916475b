"""Room events: every type survives the Redis round trip, keeps today's JSON shape,
and forwards to participants exactly the fields past the envelope."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from mediaplane.wire.room_events import (
    ROOM_EVENT,
    GrantsChanged,
    Handover,
    Kick,
    NewProducer,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    PeerReconnected,
    PeerReconnecting,
    ProducerClosed,
    ProducerPaused,
    ProducerResumed,
    RecordingChanged,
    Replaced,
    RoomCreated,
    RoomDeleted,
    RoomEvent,
)

EVENTS: list[RoomEvent] = [
    PeerJoined(
        room="r",
        origin="p1",
        peer=PeerInfo(peer_id="p1", identity="a", display_name="A", kind="participant"),
    ),
    PeerLeft(room="r", origin="p1", peer_id="p1", reason="left"),
    NewProducer(
        room="r",
        origin="p1",
        producer_id="x",
        peer_id="p1",
        identity="a",
        kind="audio",
        source="audio",
        paused=False,
    ),
    ProducerClosed(room="r", origin="p1", producer_id="x", peer_id="p1"),
    ProducerPaused(room="r", origin="p1", producer_id="x", peer_id="p1"),
    ProducerResumed(room="r", producer_id="x", peer_id="p1", by_admin=True),
    RoomCreated(room="r"),
    RecordingChanged(room="r", recording_id="0123456789abcdef", identity="a", active=True),
    Kick(room="r", identity="a"),
    Replaced(room="r", peer_id="p1"),
    GrantsChanged(room="r", identity="a", grants={"room": "r", "can_publish": False}),
    RoomDeleted(room="r"),
    PeerReconnecting(room="r", origin="p1", peer_id="p1"),
    PeerReconnected(room="r", origin="p1", peer_id="p1"),
    Handover(room="r", origin="p1", peer_id="p1"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_every_event_round_trips_through_json(event: RoomEvent) -> None:
    stamped = event.model_copy(update={"instance": "inst1"})
    back = ROOM_EVENT.validate_json(stamped.model_dump_json())
    assert type(back) is type(event)
    assert back == stamped
    body = json.loads(stamped.model_dump_json())
    assert body["type"] == event.type and body["room"] == "r" and body["instance"] == "inst1"
    assert "origin" in body  # null when no peer caused it, as before the models


def test_the_wire_shape_is_camel_case_as_participants_see_it() -> None:
    joined = json.loads(EVENTS[0].model_dump_json())
    assert joined == {
        "room": "r", "instance": "", "origin": "p1", "type": "peerJoined",
        "peer": {"peerId": "p1", "identity": "a", "displayName": "A", "kind": "participant"},
    }  # fmt: skip
    assert EVENTS[2].data() == {
        "producerId": "x", "peerId": "p1", "identity": "a",
        "kind": "audio", "source": "audio", "paused": False,
    }  # fmt: skip


def test_by_admin_is_sent_only_when_an_admin_muted() -> None:
    assert ProducerPaused(room="r", producer_id="x", peer_id="p").data() == {
        "producerId": "x", "peerId": "p",
    }  # fmt: skip
    assert ProducerPaused(room="r", producer_id="x", peer_id="p", by_admin=True).data() == {
        "producerId": "x", "peerId": "p", "byAdmin": True,
    }  # fmt: skip


def test_only_participant_facing_events_are_forwarded() -> None:
    forwarded = {e.type for e in EVENTS if e.forwarded}
    assert forwarded == {
        "peerJoined", "peerLeft", "newProducer", "producerClosed", "producerPaused",
        "producerResumed", "roomCreated", "recording", "peerReconnecting", "peerReconnected",
    }  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"room": "r"}',
        '{"type": "nonsense", "room": "r"}',
        '{"type": "kick"}',
        '{"type": "kick", "room": "r"}',
        '{"type": "newProducer", "room": "r", "producerId": "x", "kind": "data"}',
    ],
)
def test_malformed_events_are_refused(raw: str) -> None:
    with pytest.raises(ValidationError):
        ROOM_EVENT.validate_json(raw)
