"""Which router a joining participant of a spanning room gets (placement.span_router)."""

from __future__ import annotations

from mediaplane.control.rooms.placement import span_router
from mediaplane.state.models import PeerKind, PeerRecord


def _peers(*routers: str | None, kind: PeerKind = "participant") -> list[PeerRecord]:
    return [
        PeerRecord(peer_id=f"p{i}", identity=f"u{i}", instance="i", kind=kind, router_id=r)
        for i, r in enumerate(routers)
    ]


def test_the_first_router_until_it_holds_span_after_participants() -> None:
    assert span_router([], "new", {}, 2) is None
    assert span_router(_peers(None), "new", {}, 2) is None
    assert span_router(_peers(None, None), "new", {}, 2) is True


def test_a_further_router_with_room_is_used_before_a_new_one() -> None:
    extra = {"r2": 111, "r3": 222}
    assert span_router(_peers(None, None, "r2", "r2"), "new", extra, 2) == "r3"
    assert span_router(_peers(None, None, "r2"), "new", extra, 2) == "r2"
    assert span_router(_peers(None, None, "r2", "r2", "r3", "r3"), "new", extra, 2) is True


def test_the_joining_peer_and_ingress_peers_do_not_count() -> None:
    # A rejoin finds its own (stale) record: it must not count against itself.
    peers = _peers(None, None)
    assert span_router(peers, "p1", {}, 2) is None
    # Injected media (ingress) stays on the first router and takes no participant place.
    assert span_router(_peers(None, None, kind="ingress"), "new", {}, 2) is None
