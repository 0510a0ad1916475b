"""What a received room event does on this instance (events.RoomEvents.deliver), with
no Redis: listeners get it typed, the peers here get it forwarded or acted on."""

from __future__ import annotations

from typing import Any, cast

from mediaplane.control.auth import Grants, Principal
from mediaplane.control.rooms.events import RoomEvents
from mediaplane.control.rooms.peers import LocalPeer, LocalRoom
from mediaplane.state.models import ProducerRecord
from mediaplane.state.store import StateStore
from mediaplane.wire.ids import Json
from mediaplane.wire.room_events import Kick, PeerLeft, ProducerPaused, RoomEvent

HERE, ELSEWHERE = "inst-here", "inst-other"


class FakeHere:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def kick(self, room: str, identity: str | None, code: int, reason: str) -> None:
        self.calls.append(("kick", room, identity, code))

    async def replace(self, room: str, peer_id: str) -> None:
        self.calls.append(("replace", room, peer_id))

    async def apply_grants(self, room: str, identity: str, grants: Grants) -> None:
        self.calls.append(("grants", room, identity, grants.can_publish))


def _peer(peer_id: str, got: list[tuple[str, str, Json]]) -> LocalPeer:
    async def sink(event: str, data: Json) -> None:
        got.append((peer_id, event, data))

    async def gone(_code: int, _reason: str) -> None:
        return None

    principal = Principal(identity=f"u-{peer_id}", name="", api_key="k", grants=Grants(room="r"))
    return LocalPeer(
        peer_id=peer_id, room="r", principal=principal, display_name=peer_id,
        instance=HERE, send_event=sink, disconnect=gone,
    )  # fmt: skip


def _setup() -> tuple[RoomEvents, FakeHere, list[tuple[str, str, Json]], LocalRoom]:
    got: list[tuple[str, str, Json]] = []
    local = LocalRoom("r", "router-1", {}, cast(Any, None), "node-1")
    for pid in ("p1", "p2"):
        local.peers[pid] = _peer(pid, got)
    events = RoomEvents(cast(StateStore, None), HERE, {"r": local})
    here = FakeHere()
    events.here = here
    return events, here, got, local


def _raw(event: RoomEvent, instance: str) -> str:
    return event.model_copy(update={"instance": instance}).model_dump_json()


async def test_a_forwarded_event_reaches_every_peer_here_but_its_origin() -> None:
    events, here, got, _ = _setup()
    await events.deliver(_raw(PeerLeft(room="r", origin="p1", peer_id="p1", reason="x"), HERE))
    assert got == [("p2", "peerLeft", {"peerId": "p1", "reason": "x"})]
    assert here.calls == []


async def test_a_kick_is_acted_on_by_the_other_instances_only() -> None:
    events, here, got, _ = _setup()
    await events.deliver(_raw(Kick(room="r", identity="u-p1"), ELSEWHERE))
    await events.deliver(_raw(Kick(room="r", identity="u-p2"), HERE))  # done already
    assert here.calls == [("kick", "r", "u-p1", 4003)]
    assert got == []  # never forwarded


async def test_grants_are_validated_before_they_apply() -> None:
    events, here, _, _ = _setup()
    good = '{"type": "grants", "room": "r", "instance": "x", "identity": "u-p1", '
    await events.deliver(good + '"grants": {"room": "r", "can_publish": false}}')
    await events.deliver(good + '"grants": {"can_publish": "maybe?"}}')
    assert here.calls == [("grants", "r", "u-p1", False)]


async def test_a_mute_elsewhere_updates_the_owners_record() -> None:
    events, _, got, local = _setup()
    record = ProducerRecord(
        producer_id="pr", peer_id="p1", identity="u-p1", kind="audio", source="audio"
    )
    local.peers["p1"].producers["pr"] = record
    paused = ProducerPaused(room="r", producer_id="pr", peer_id="p1", by_admin=True)
    await events.deliver(_raw(paused, ELSEWHERE))
    assert record.paused is True
    assert [g[1:] for g in got] == [("producerPaused", {"producerId": "pr", "peerId": "p1",
                                                         "byAdmin": True})] * 2  # fmt: skip


async def test_listeners_get_typed_events_first_and_one_failing_stops_nothing() -> None:
    events, _, got, _ = _setup()
    seen: list[RoomEvent] = []

    async def broken(_event: RoomEvent) -> None:
        raise RuntimeError("listener bug")

    async def listener(event: RoomEvent) -> None:
        seen.append(event)
        assert got == []  # before the peers

    events.room_listeners += [broken, listener]
    await events.deliver(_raw(PeerLeft(room="r", peer_id="zz", reason="x"), ELSEWHERE))
    assert [type(e) for e in seen] == [PeerLeft]
    assert len(got) == 2


async def test_malformed_and_unknown_rooms_are_ignored() -> None:
    events, here, got, _ = _setup()
    seen: list[RoomEvent] = []

    async def listener(event: RoomEvent) -> None:
        seen.append(event)

    events.room_listeners.append(listener)
    await events.deliver("{not json")
    await events.deliver('{"type": "kick", "room": "r"}')
    await events.deliver(_raw(Kick(room="elsewhere", identity="u-p1"), ELSEWHERE))
    assert len(seen) == 1  # the well-formed one, for a room with nobody here
    assert here.calls == [] and got == []
