"""Last-N: who is forwarded above the lowest layer (control/rooms/lastn.py)."""

from __future__ import annotations

from mediaplane.control.rooms.lastn import (
    PRIORITY_CAMERA,
    PRIORITY_SCREEN,
    PRIORITY_SPEAKER,
    SpeakerOrder,
    priority_of,
    spatial_with_last_n,
)


def test_speakers_rank_before_those_who_never_spoke_who_rank_by_join() -> None:
    order = SpeakerOrder()
    for peer in ("a", "b", "c", "d"):
        order.joined(peer)
    assert order.last(["a", "b", "c", "d"], 2) == {"a", "b"}
    assert order.spoke("c") is True
    assert order.spoke("c") is False  # already the dominant speaker
    assert order.last(["a", "b", "c", "d"], 2) == {"c", "a"}
    order.spoke("d")
    assert order.last(["a", "b", "c", "d"], 2) == {"d", "c"}
    assert order.last(["a", "b", "c", "d"], 1) == {"d"}
    assert order.last(["a", "b"], 1) == {"a"}  # of those the subscriber sees
    assert order.last(["a", "b", "c", "d"], 0) == {"a", "b", "c", "d"}  # off
    order.left("d")
    assert order.last(["a", "b", "c"], 1) == {"c"}


def test_only_cameras_outside_the_last_n_drop_to_the_lowest_layer() -> None:
    assert spatial_with_last_n(2, "video", "x", {"x"}) == 2
    assert spatial_with_last_n(2, "video", "y", {"x"}) == 0
    assert spatial_with_last_n(2, "screen", "y", {"x"}) == 2  # a shared screen stays sharp
    assert spatial_with_last_n(None, "video", "y", {"x"}) is None


def test_priority_puts_a_screen_first_then_the_speaker() -> None:
    assert priority_of("screen", "ann", "ben") == PRIORITY_SCREEN
    assert priority_of("video", "ben", "ben") == PRIORITY_SPEAKER
    assert priority_of("video", "ann", "ben") == PRIORITY_CAMERA
    assert priority_of("video", "ann", None) == PRIORITY_CAMERA
    assert PRIORITY_SCREEN > PRIORITY_SPEAKER > PRIORITY_CAMERA == 1  # mediasoup's default
