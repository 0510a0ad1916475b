"""TransportWatch with a stand-in room service: no SFU, Redis or socket."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from mediaplane.control.auth import Grants, Principal
from mediaplane.control.rooms import LocalPeer, RoomManager
from mediaplane.control.signaling.transport_watch import (
    CLOSE_MEDIA_LOST,
    TransportWatch,
    verdict,
)
from mediaplane.sfu.models import Notification


def ice(transport_id: str, state: str) -> Notification:
    data = {"transportId": transport_id, "iceState": state}
    return Notification(notification="transport.iceStateChange", data=data)


def dtls(transport_id: str, state: str) -> Notification:
    data = {"transportId": transport_id, "dtlsState": state}
    return Notification(notification="transport.dtlsStateChange", data=data)


class Pool:
    def __init__(self) -> None:
        self.listeners: list[Any] = []

    def add_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Any) -> None:
        self.listeners.remove(listener)


class Rooms:
    def __init__(self) -> None:
        self.pool = Pool()
        self.left: list[tuple[str, str]] = []

    async def leave(self, peer: LocalPeer, reason: str) -> None:
        self.left.append((peer.peer_id, reason))


class Peer:
    def __init__(self, peer_id: str) -> None:
        self.closed: list[tuple[int, str]] = []

        async def disconnect(code: int, reason: str) -> None:
            self.closed.append((code, reason))

        async def send_event(event: str, data: Any) -> None:
            pass

        principal = Principal(
            identity=peer_id, name=peer_id, api_key="k", grants=Grants(room="r", room_join=True)
        )
        self.peer = LocalPeer(peer_id, "r", principal, peer_id, "i", send_event, disconnect)


async def started(lost_after_s: float) -> tuple[TransportWatch, Rooms]:
    rooms = Rooms()
    watch = TransportWatch(cast(RoomManager, rooms), lost_after_s=lost_after_s)
    await watch.start()
    return watch, rooms


def test_verdicts() -> None:
    assert verdict(dtls("t", "failed")) == "lost"
    assert verdict(dtls("t", "closed")) == "lost"
    assert verdict(dtls("t", "connected")) == "none"
    assert verdict(ice("t", "disconnected")) == "grace"
    assert verdict(ice("t", "failed")) == "grace"
    assert verdict(ice("t", "completed")) == "recovered"
    assert verdict(Notification(notification="producer.score", data={})) == "none"


async def test_dtls_failure_ends_the_participant_at_once() -> None:
    watch, rooms = await started(60.0)
    alice = Peer("alice")
    watch.watch("t1", alice.peer)
    rooms.pool.listeners[0](dtls("t1", "failed"))
    await asyncio.sleep(0.01)
    assert rooms.left == [("alice", "media connection lost (DTLS failed)")]
    assert alice.closed == [(CLOSE_MEDIA_LOST, "media connection lost (DTLS failed)")]
    await watch.close()
    assert rooms.pool.listeners == []


async def test_ice_lost_longer_than_the_bound_ends_it_and_a_recovery_does_not() -> None:
    watch, rooms = await started(0.1)
    alice, bob = Peer("alice"), Peer("bob")
    watch.watch("ta", alice.peer)
    watch.watch("tb", bob.peer)
    on_sfu = rooms.pool.listeners[0]
    on_sfu(ice("ta", "disconnected"))
    on_sfu(ice("tb", "disconnected"))
    on_sfu(ice("tb", "completed"))  # bob's comes back within the bound
    await asyncio.sleep(0.3)
    assert [p for p, _ in rooms.left] == ["alice"]
    assert alice.closed and alice.closed[0][0] == CLOSE_MEDIA_LOST
    assert bob.closed == []
    await watch.close()


async def test_a_forgotten_participant_is_not_ended() -> None:
    watch, rooms = await started(0.05)
    alice = Peer("alice")
    watch.watch("ta", alice.peer)
    rooms.pool.listeners[0](ice("ta", "disconnected"))
    watch.forget(alice.peer)  # it left by itself meanwhile
    rooms.pool.listeners[0](dtls("ta", "closed"))
    await asyncio.sleep(0.15)
    assert rooms.left == [] and alice.closed == []
    await watch.close()
