"""A peer's requests are refused before any SFU or Redis call when it has not joined,
names an id it does not own, or uses a transport of the wrong direction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest

from mediaplane.control.auth import Grants, Principal
from mediaplane.control.errors import InvalidState, NotFound
from mediaplane.control.rooms.events import RoomEvents
from mediaplane.control.rooms.peers import LocalPeer, LocalRoom
from mediaplane.control.rooms.placement import Placement
from mediaplane.control.rooms.sessions import Sessions
from mediaplane.control.tasks import OwnedTasks
from mediaplane.state.store import StateStore
from mediaplane.wire.ids import Json

# Neither is ever reached: every refusal below comes first.
NO_STORE = cast(StateStore, None)
NO_SFU = cast(Any, None)


async def _sink(_event: str, _data: Json) -> None:
    return None


async def _gone(_code: int, _reason: str) -> None:
    return None


def _sessions() -> tuple[Sessions, LocalPeer]:
    placement = Placement(NO_STORE, cast(Any, None), OwnedTasks())
    events = RoomEvents(NO_STORE, "inst", placement.rooms)
    sessions = Sessions(NO_STORE, placement, events, notify=lambda _n, _d: None, counts=Counter())
    principal = Principal(identity="a", name="", api_key="k", grants=Grants(room="r"))
    peer = LocalPeer(
        peer_id="p1", room="r", principal=principal, display_name="a",
        instance="inst", send_event=_sink, disconnect=_gone,
    )  # fmt: skip
    return sessions, peer


def _join(sessions: Sessions, peer: LocalPeer) -> None:
    local = LocalRoom("r", "router-1", {}, NO_SFU, "node-1")
    local.peers[peer.peer_id] = peer
    sessions.rooms["r"] = local
    peer.transports.update({"t-send": "send", "t-recv": "recv"})


Call = Callable[[Sessions, LocalPeer], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "create_transport": lambda s, p: s.create_transport(p, "send"),
    "connect_transport": lambda s, p: s.connect_transport(p, "t-send", {}),
    "restart_ice": lambda s, p: s.restart_ice(p, "t-send"),
    "produce": lambda s, p: s.produce(p, "t-send", "audio", {}, "audio", False),
    "consume": lambda s, p: s.consume(p, "t-recv", "x", {}),
    "resume_consumer": lambda s, p: s.resume_consumer(p, "c1"),
    "pause_consumer": lambda s, p: s.pause_consumer(p, "c1"),
    "set_preferred_layers": lambda s, p: s.set_preferred_layers(p, "c1", 0, None),
    "request_key_frame": lambda s, p: s.request_key_frame(p, "c1"),
    "stats": lambda s, p: s.stats(p),
}


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_nothing_before_the_join(name: str) -> None:
    sessions, peer = _sessions()
    peer.transports["t-send"] = "send"  # even with ids it would own
    peer.consumers["c1"] = "x"
    assert not sessions.is_joined(peer)
    with pytest.raises(InvalidState, match="join the room first"):
        await CALLS[name](sessions, peer)


@pytest.mark.parametrize(
    "call",
    [
        lambda s, p: s.connect_transport(p, "t-other", {}),
        lambda s, p: s.restart_ice(p, "t-other"),
        lambda s, p: s.produce(p, "t-other", "audio", {}, "audio", False),
        lambda s, p: s.consume(p, "t-other", "x", {}),
        lambda s, p: s.resume_consumer(p, "c-other"),
        lambda s, p: s.pause_consumer(p, "c-other"),
        lambda s, p: s.set_preferred_layers(p, "c-other", 1, 0),
        lambda s, p: s.request_key_frame(p, "c-other"),
        lambda s, p: s.set_producer_paused(p, "pr-other", True),
        lambda s, p: s.close_producer(p, "pr-other"),
    ],
)
async def test_ids_of_others_are_not_found(call: Call) -> None:
    sessions, peer = _sessions()
    _join(sessions, peer)
    assert sessions.is_joined(peer)
    with pytest.raises(NotFound, match="for this peer"):
        await call(sessions, peer)


async def test_a_transport_is_used_in_its_direction_only() -> None:
    sessions, peer = _sessions()
    _join(sessions, peer)
    with pytest.raises(InvalidState, match="produce needs a send transport"):
        await sessions.produce(peer, "t-recv", "audio", {}, "audio", False)
    with pytest.raises(InvalidState, match="consume needs a recv transport"):
        await sessions.consume(peer, "t-send", "x", {})


class _LayersSfu:
    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.priorities: list[tuple[str, int]] = []

    async def set_preferred_layers(
        self, consumer_id: str, spatial: int, temporal: int | None = None
    ) -> None:
        self.asked.append((consumer_id, spatial))

    async def set_priority(self, consumer_id: str, priority: int) -> None:
        self.priorities.append((consumer_id, priority))


def _last_1_room() -> tuple[Sessions, LocalPeer, LocalRoom, _LayersSfu]:
    """A room with Last-N 1 on an SFU that records what it is asked, and a viewer in it."""
    sessions, viewer = _sessions()
    sessions.last_n = 1
    sfu = _LayersSfu()
    local = LocalRoom("r", "router-1", {}, cast(Any, sfu), "node-1")
    sessions.rooms["r"] = local
    local.peers[viewer.peer_id] = viewer
    return sessions, viewer, local, sfu


async def test_last_n_moves_the_upper_layer_with_the_dominant_speaker() -> None:
    sessions, viewer, local, sfu = _last_1_room()
    for owner in ("ann", "ben"):
        local.speakers.joined(owner)
        consumer = f"c-{owner}"
        viewer.consumers[consumer] = f"prod-{owner}"
        viewer.video_consumers[consumer] = [180, 360, 720]
        viewer.video_owners[consumer] = (owner, "video")
        viewer.tile_heights[consumer] = 238  # the middle layer's tile
    viewer.consumers["c-screen"] = "prod-screen"
    viewer.video_consumers["c-screen"] = [180, 360, 720]
    viewer.video_owners["c-screen"] = ("ben", "screen")
    viewer.tile_heights["c-screen"] = 700
    # Nobody spoke: Ann joined first.
    assert sessions._layer_for(local, viewer, "c-ann") == 1
    assert sessions._layer_for(local, viewer, "c-ben") == 0
    viewer.asked_layers.update({"c-ann": 1, "c-ben": 0, "c-screen": 2})
    await sessions.speaker_changed(local, "ben")
    assert sorted(sfu.asked) == [("c-ann", 0), ("c-ben", 1)]  # the screen share untouched
    # Priorities (never asked before: all at mediasoup's 1): the screen, then the speaker.
    assert sorted(sfu.priorities) == [("c-ben", 2), ("c-screen", 3)]
    sfu.asked.clear()
    sfu.priorities.clear()
    await sessions.speaker_changed(local, "ben")  # still Ben: nothing asked
    assert sfu.asked == [] and sfu.priorities == []
    local.speakers.spoke("ann")
    await sessions.relayer(local, viewer, "test")
    assert sorted(sfu.priorities) == [("c-ann", 2), ("c-ben", 1)]
    sessions.last_n = 0
    assert sessions._layer_for(local, viewer, "c-ann") == 1  # off: the tile's layer


async def test_last_n_demotes_a_tile_when_a_better_ranked_camera_arrives() -> None:
    # Seen in CI: the viewer's first tile (Cat's) was the only camera it knew, so it
    # got its tile's layer; Ann's tile came next and Cat's was never lowered.
    sessions, viewer, local, sfu = _last_1_room()
    for owner in ("ann", "cat"):
        local.speakers.joined(owner)
    for owner in ("cat", "ann"):
        consumer = f"c-{owner}"
        viewer.consumers[consumer] = f"prod-{owner}"
        viewer.video_consumers[consumer] = [180, 360, 720]
        viewer.video_owners[consumer] = (owner, "video")
        await sessions.set_track_settings(viewer, consumer, True, 238)
    assert sfu.asked == [("c-cat", 1), ("c-ann", 1), ("c-cat", 0)]
    assert sfu.priorities == [("c-cat", 2), ("c-cat", 1), ("c-ann", 2)]  # with the layers
    # Ann's camera closes: Cat is the only one left and gets its tile's layer again.
    viewer.forget_consumer("c-ann")
    sfu.asked.clear()
    sfu.priorities.clear()
    await sessions.relayer(local, viewer, "a tile closed")
    assert sfu.asked == [("c-cat", 1)]
    assert sfu.priorities == [("c-cat", 2)]
