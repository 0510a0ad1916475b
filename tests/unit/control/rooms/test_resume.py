"""Resume tokens and the grace period (control/rooms/resume.py) with stand-ins for
Redis, the sessions and the room events: no SFU, Redis or socket."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from mediaplane.control.auth import Grants, Principal
from mediaplane.control.rooms.peers import LocalPeer
from mediaplane.control.rooms.resume import (
    RESUME_MISMATCH,
    RESUME_TOKEN_USED,
    SESSION_ENDED,
    SESSION_EXPIRED,
    Resumes,
    new_token,
    refusal,
    token_hash,
)
from mediaplane.control.tasks import OwnedTasks
from mediaplane.state.models import PeerRecord, ResumeRecord, RoomRecord
from mediaplane.wire.ids import Json
from mediaplane.wire.room_events import Handover, PeerReconnecting

GRACE_S = 0.05


def record(**kw: Any) -> ResumeRecord:
    return ResumeRecord(**{"room": "r", "identity": "alice", "peer_id": "p1", **kw})


# tokens ---------------------------------------------------------------------------
def test_tokens_are_random_and_only_their_hash_is_kept() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len({t for t, _ in tokens}) == 100
    for token, hashed in tokens:
        assert len(token) >= 43  # 256 bits, URL-safe base64
        assert hashed == hashlib.sha256(token.encode()).hexdigest() == token_hash(token)
        assert token not in hashed


@pytest.mark.parametrize(
    ("rec", "room", "identity", "code"),
    [
        (None, "r", "alice", SESSION_EXPIRED),
        (record(state="expired"), "r", "alice", SESSION_EXPIRED),
        (record(), "r", "bob", RESUME_MISMATCH),
        (record(), "other", "alice", RESUME_MISMATCH),
        (record(state="used"), "r", "bob", RESUME_MISMATCH),
        (record(state="used"), "r", "alice", RESUME_TOKEN_USED),
        (record(state="ended", reason="removed by an admin"), "r", "alice", SESSION_ENDED),
    ],
)
def test_each_refusal_has_its_code(
    rec: ResumeRecord | None, room: str, identity: str, code: str
) -> None:
    refused = refusal(rec, room, identity)
    assert refused is not None and refused.code == code
    if rec is not None and rec.reason:
        assert rec.reason in refused.message


def test_a_live_token_of_this_participant_is_not_refused() -> None:
    assert refusal(record(), "r", "alice") is None


# the grace period -----------------------------------------------------------------
class Store:
    def __init__(self) -> None:
        self.owner = "inst"
        self.expired: list[tuple[str, float]] = []
        self.tombstones: list[tuple[str, ResumeRecord]] = []

    async def update_peer_if_owned(
        self, room: str, peer_id: str, instance: str, update: dict[str, Any]
    ) -> bool:
        return instance == self.owner

    async def expire_resume(self, token_hash: str, ttl_s: float) -> None:
        self.expired.append((token_hash, ttl_s))

    async def get_peer(self, room: str, peer_id: str) -> PeerRecord:
        return PeerRecord(peer_id=peer_id, identity="alice", instance=self.owner)

    async def put_resume(self, token_hash: str, rec: ResumeRecord, ttl_s: float) -> None:
        self.tombstones.append((token_hash, rec))

    async def remove_peer_media(self, room: str, peer_id: str, field: str | None = None) -> None:
        return None


class Sessions:
    def __init__(self) -> None:
        self.on_gone: list[Any] = []
        self.here: dict[str, LocalPeer] = {}
        self.left: list[tuple[str, str]] = []
        self.forgotten: list[str] = []

    def local_peer(self, room: str, peer_id: str) -> LocalPeer | None:
        return self.here.get(peer_id)

    async def leave(self, peer: LocalPeer, reason: str) -> None:
        self.here.pop(peer.peer_id, None)
        self.left.append((peer.peer_id, reason))
        for gone in self.on_gone:
            await gone(peer, reason)

    def forget_here(self, peer: LocalPeer) -> None:
        self.here.pop(peer.peer_id, None)
        self.forgotten.append(peer.peer_id)


class Events:
    def __init__(self) -> None:
        self.room_listeners: list[Any] = []
        self.published: list[Any] = []

    async def publish(self, event: Any) -> None:
        self.published.append(event)


def setup() -> tuple[Resumes, Store, Sessions, Events, LocalPeer, list[tuple[int, str]]]:
    store, sessions, events = Store(), Sessions(), Events()
    resumes = Resumes(
        cast(Any, store), cast(Any, None), cast(Any, sessions), cast(Any, events),
        OwnedTasks(), "inst", grace_s=GRACE_S, tombstone_s=60.0,
    )  # fmt: skip
    closed: list[tuple[int, str]] = []

    async def disconnect(code: int, reason: str) -> None:
        closed.append((code, reason))

    async def send_event(_event: str, _data: Json) -> None:
        return None

    principal = Principal(identity="alice", name="", api_key="k", grants=Grants(room="r"))
    peer = LocalPeer(
        peer_id="p1", room="r", principal=principal, display_name="Alice", instance="inst",
        send_event=send_event, disconnect=disconnect, resume_hash="h1",
    )  # fmt: skip
    sessions.here[peer.peer_id] = peer
    return resumes, store, sessions, events, peer, closed


async def test_away_keeps_the_peer_for_the_grace_period_then_it_leaves() -> None:
    resumes, store, sessions, events, peer, _ = setup()
    await resumes.away(peer)
    assert peer.away_since is not None
    assert store.expired == [("h1", GRACE_S)]
    assert [type(e) for e in events.published] == [PeerReconnecting]
    assert sessions.left == []
    await asyncio.sleep(GRACE_S * 4)
    assert sessions.left == [("p1", "disconnected")]
    # the token now says expired (not "ended"): the refusal is session_expired
    assert [(h, r.state) for h, r in store.tombstones] == [("h1", "expired")]


async def test_a_leave_during_the_grace_period_ends_the_token_and_the_timer() -> None:
    resumes, store, sessions, _, peer, _ = setup()
    await resumes.away(peer)
    await sessions.leave(peer, "removed by an admin")
    await asyncio.sleep(GRACE_S * 4)
    assert sessions.left == [("p1", "removed by an admin")]  # once: the timer was cancelled
    assert [(h, r.state, r.reason) for h, r in store.tombstones] == [
        ("h1", "ended", "removed by an admin")
    ]


async def test_a_peer_another_instance_took_is_forgotten_here_not_left() -> None:
    resumes, store, sessions, _, peer, closed = setup()
    await resumes.away(peer)
    store.owner = "other"  # adopted by another instance; its handover was missed
    await asyncio.sleep(GRACE_S * 4)
    assert sessions.left == [] and sessions.forgotten == ["p1"]
    assert closed == [(4011, "the session resumed on another connection")]


async def test_a_socket_that_drops_after_the_peer_was_adopted_elsewhere_is_no_news() -> None:
    resumes, store, sessions, events, peer, _ = setup()
    store.owner = "other"
    await resumes.away(peer)
    assert events.published == [] and sessions.forgotten == ["p1"]
    await asyncio.sleep(GRACE_S * 4)
    assert sessions.left == []


async def test_a_handover_from_another_instance_forgets_the_peer_and_closes_its_socket() -> None:
    _, _, sessions, events, peer, closed = setup()
    for listener in events.room_listeners:
        await listener(Handover(room="r", instance="inst", peer_id="p1"))
    assert sessions.forgotten == []  # our own handover
    for listener in events.room_listeners:
        await listener(Handover(room="r", instance="other", peer_id="p1"))
    assert sessions.forgotten == ["p1"] and closed[0][0] == 4011
    assert peer.resume_hash is None


# the peers of dead instances ------------------------------------------------------------
class SweepStore(Store):
    """One room with alice (instance `dead`) and bob (instance `inst`)."""

    def __init__(self, token_state: str = "live") -> None:
        super().__init__()
        self.owner = "dead"
        self.alive = {"inst": True, "dead": False}
        self.token = record(state=token_state)
        self.peers = {
            "p1": PeerRecord(peer_id="p1", identity="alice", instance="dead"),
            "p2": PeerRecord(peer_id="p2", identity="bob", instance="inst"),
        }

    async def list_rooms(self) -> list[RoomRecord]:
        return [RoomRecord(name="r")]

    async def list_peers(self, room: str) -> list[PeerRecord]:
        return list(self.peers.values())

    async def instance_alive(self, instance_id: str) -> bool:
        return self.alive[instance_id]

    async def get_peer_media(self, room: str, peer_id: str) -> dict[str, str]:
        return {"resume": "h1", "transport:t1": "send"} if peer_id == "p1" else {}

    async def take_resume(
        self, token_hash: str, room: str, identity: str, tombstone_ttl_s: float
    ) -> ResumeRecord:
        taken = self.token
        if taken.state == "live":
            self.token = taken.model_copy(update={"state": "used"})
        return taken

    async def update_peer_if_owned(
        self, room: str, peer_id: str, instance: str, update: dict[str, Any]
    ) -> bool:
        held = self.peers[peer_id]
        if held.instance != instance:
            return False
        self.peers[peer_id] = held.model_copy(update=update)
        return True

    async def list_producers(self, room: str) -> list[Any]:
        return []


class Placement:
    def __init__(self) -> None:
        self.room = type("LocalRoomStandIn", (), {"peers": {}})()

    @contextlib.asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        yield

    async def local_room(self, room: RoomRecord) -> Any:
        return self.room

    @contextlib.asynccontextmanager
    async def joining(self, room: RoomRecord) -> AsyncIterator[Any]:
        yield self.room

    def cancel_release(self, name: str) -> None:
        return None


def sweep_setup(token_state: str = "live") -> tuple[Resumes, SweepStore, Sessions]:
    store, sessions, events = SweepStore(token_state), Sessions(), Events()
    resumes = Resumes(
        cast(Any, store), cast(Any, Placement()), cast(Any, sessions), cast(Any, events),
        OwnedTasks(), "inst", grace_s=10.0, tombstone_s=60.0,
    )  # fmt: skip
    sessions.consumer_owner = {}  # type: ignore[attr-defined]
    return resumes, store, sessions


async def test_a_dead_instances_peer_leaves_once_its_grace_period_is_over() -> None:
    resumes, store, sessions = sweep_setup()
    assert await resumes.sweep(now=1000.0) == 0  # first seen orphaned: its grace starts
    assert await resumes.sweep(now=1009.0) == 0
    assert sessions.left == [] and store.token.state == "live"
    assert await resumes.sweep(now=1010.0) == 1
    assert sessions.left == [("p1", "disconnected")]  # alice only: bob's instance lives
    assert store.peers["p1"].instance == "inst"  # claimed before it left
    assert [(h, r.state) for h, r in store.tombstones] == [("h1", "expired")]


async def test_a_dead_instances_peer_away_since_before_counts_from_then() -> None:
    resumes, store, sessions = sweep_setup()
    store.peers["p1"] = store.peers["p1"].model_copy(
        update={"state": "disconnected", "disconnected_at": 990.0}
    )
    assert await resumes.sweep(now=1000.0) == 1
    assert sessions.left == [("p1", "disconnected")]


async def test_a_peer_that_resumed_elsewhere_is_not_swept() -> None:
    resumes, store, sessions = sweep_setup(token_state="used")
    await resumes.sweep(now=1000.0)
    assert await resumes.sweep(now=2000.0) == 0
    assert sessions.left == [] and store.peers["p1"].instance == "dead"


async def test_a_live_instances_peer_is_never_swept() -> None:
    resumes, store, sessions = sweep_setup()
    store.alive["dead"] = True
    await resumes.sweep(now=1000.0)
    assert await resumes.sweep(now=5000.0) == 0 and sessions.left == []
