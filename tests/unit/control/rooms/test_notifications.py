"""SFU notifications reach the peer owning the consumer, named by the room's producer
id; a dead worker's rooms (spanning routers `{room}~{n}` included) rejoin once each."""

from __future__ import annotations

from typing import Any, cast

from mediaplane.control.auth import Grants, Principal
from mediaplane.control.rooms.notifications import SfuNotifications
from mediaplane.control.rooms.peers import LocalPeer
from mediaplane.control.rooms.resync import Resync
from mediaplane.control.rooms.sessions import Sessions
from mediaplane.sfu.models import Notification
from mediaplane.state.store import StateStore
from mediaplane.wire.ids import Json


class FakeSessions:
    def __init__(self) -> None:
        self.consumer_owner: dict[str, LocalPeer] = {}
        self.rooms: dict[str, Any] = {}


class FakeResync:
    def __init__(self) -> None:
        self.rejoined: list[tuple[str, str]] = []

    async def rejoin_room(self, room: str, reason: str, *, node: str | None = None) -> None:
        self.rejoined.append((room, reason))


def _setup() -> tuple[SfuNotifications, FakeSessions, FakeResync, list[tuple[str, Json]]]:
    got: list[tuple[str, Json]] = []

    async def sink(event: str, data: Json) -> None:
        got.append((event, data))

    async def gone(_code: int, _reason: str) -> None:
        return None

    principal = Principal(identity="a", name="", api_key="k", grants=Grants(room="r"))
    peer = LocalPeer(
        peer_id="p1", room="r", principal=principal, display_name="a",
        instance="i", send_event=sink, disconnect=gone,
    )  # fmt: skip
    peer.consumers["c1"] = "room-producer"
    sessions, resync = FakeSessions(), FakeResync()
    sessions.consumer_owner["c1"] = peer
    notes = SfuNotifications(cast(StateStore, None), cast(Sessions, sessions), cast(Resync, resync))
    return notes, sessions, resync, got


def _note(kind: str, **data: Any) -> Notification:
    return Notification(notification=kind, data=data)


async def test_consumer_events_name_the_rooms_producer_not_its_pipe() -> None:
    notes, sessions, _, got = _setup()
    await notes.handle(_note("consumer.producerPause", consumerId="c1", producerId="pipe-of-it"))
    await notes.handle(_note("consumer.producerResume", consumerId="c1", producerId="pipe"))
    await notes.handle(_note("consumer.score", consumerId="c1", score={"score": 9}))
    await notes.handle(_note("consumer.closed", consumerId="c1", producerId="pipe-of-it"))
    assert got == [
        ("consumerPaused", {"consumerId": "c1", "producerId": "room-producer"}),
        ("consumerResumed", {"consumerId": "c1", "producerId": "room-producer"}),
        ("consumerScore", {"consumerId": "c1", "score": {"score": 9}}),
        ("consumerClosed", {"consumerId": "c1", "producerId": "room-producer"}),
    ]
    assert sessions.consumer_owner == {}  # closed: forgotten
    await notes.handle(_note("consumer.score", consumerId="c1", score={"score": 1}))
    assert len(got) == 4


async def test_consumers_of_nobody_here_are_ignored() -> None:
    notes, _, _, got = _setup()
    await notes.handle(_note("consumer.closed", consumerId="c-elsewhere", producerId="x"))
    assert got == []


async def test_a_dead_worker_rejoins_each_of_its_rooms_once() -> None:
    notes, _, resync, _ = _setup()
    await notes.handle(_note("worker.died", roomIds=["big", "big~1", "big~2", "small"]))
    assert sorted(r for r, _ in resync.rejoined) == ["big", "small"]
    assert {why for _, why in resync.rejoined} == {"the media server restarted"}
