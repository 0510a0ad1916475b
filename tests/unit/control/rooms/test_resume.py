"""Resume tokens and the grace period (control/rooms/resume.py) with stand-ins for
Redis, the sessions and the room events: no SFU, Redis or socket."""

from __future__ import annotations

import asyncio
import hashlib
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
from mediaplane.state.models import PeerRecord, ResumeRecord
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
