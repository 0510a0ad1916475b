"""A LocalPeer acts only on the SFU objects it created; what others see of it."""

from __future__ import annotations

import pytest

from mediaplane.control.auth import Grants, Principal
from mediaplane.control.errors import NotFound
from mediaplane.control.rooms.peers import LocalPeer
from mediaplane.state.models import ProducerRecord
from mediaplane.wire.ids import Json


async def _sink(_event: str, _data: Json) -> None:
    return None


async def _gone(_code: int, _reason: str) -> None:
    return None


def _peer() -> LocalPeer:
    principal = Principal(identity="alice", name="Alice", api_key="k", grants=Grants(room="r1"))
    return LocalPeer(
        peer_id="p1", room="r1", principal=principal, display_name="Alice",
        instance="i1", send_event=_sink, disconnect=_gone,
    )  # fmt: skip


def test_a_peer_owns_only_what_it_created() -> None:
    peer = _peer()
    peer.transports["t-send"] = "send"
    peer.consumers["c1"] = "prod-of-bob"
    record = ProducerRecord(
        producer_id="pr1", peer_id="p1", identity="alice", kind="audio", source="audio"
    )
    peer.producers["pr1"] = record
    assert peer.owns_transport("t-send") == "send"
    assert peer.owns_consumer("c1") == "c1"
    assert peer.owns_producer("pr1") is record
    with pytest.raises(NotFound, match="no transport t-other"):
        peer.owns_transport("t-other")
    with pytest.raises(NotFound, match="no consumer c2"):
        peer.owns_consumer("c2")
    with pytest.raises(NotFound, match="no producer pr2"):
        peer.owns_producer("pr2")
    # A consumer id is not a producer id, nor the other way round.
    with pytest.raises(NotFound):
        peer.owns_producer("c1")
    with pytest.raises(NotFound):
        peer.owns_consumer("pr1")


def test_forgetting_media_drops_every_id() -> None:
    peer = _peer()
    peer.transports["t"] = "recv"
    peer.consumers["c"] = "p"
    peer.forget_media()
    assert (peer.transports, peer.producers, peer.consumers) == ({}, {}, {})
    with pytest.raises(NotFound):
        peer.owns_transport("t")


def test_what_others_see_and_what_redis_keeps() -> None:
    peer = _peer()
    assert peer.public() == {
        "peerId": "p1", "identity": "alice", "displayName": "Alice", "kind": "participant"
    }  # fmt: skip
    record = peer.record()
    assert (record.peer_id, record.identity, record.name, record.instance) == (
        "p1", "alice", "Alice", "i1",
    )  # fmt: skip
    assert record.router_id is None
