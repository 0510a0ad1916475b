"""Last-N (Jitsi's): with more camera tiles than N, only the N most recent speakers'
video is forwarded at the layer their tile wants; the others get the lowest layer
(a thumbnail keeps moving, the publisher need not encode more for this subscriber).

Pure (tests/unit/control/rooms/test_lastn.py). Who spoke comes from the SFU's active
speaker observer (notifications.py); those who never spoke rank after every speaker,
in the order they joined. N is the setting MEDIAPLANE_LAST_N (0: everyone at the layer
of their tile); docs/video-quality.md. `priority_of` orders the same subscriber's video
consumers for the SFU's bandwidth estimate, Last-N on or off.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from mediaplane.control.auth import TrackSource


@dataclass
class SpeakerOrder:
    """A room's peers, by how recently they were the dominant speaker."""

    _joined: dict[str, int] = field(default_factory=dict)
    _spoke: dict[str, int] = field(default_factory=dict)
    _clock: itertools.count[int] = field(default_factory=itertools.count)

    def joined(self, peer_id: str) -> None:
        self._joined.setdefault(peer_id, next(self._clock))

    def left(self, peer_id: str) -> None:
        self._joined.pop(peer_id, None)
        self._spoke.pop(peer_id, None)

    def spoke(self, peer_id: str) -> bool:
        """`peer_id` is the dominant speaker now; False when it already was."""
        if self._spoke and max(self._spoke, key=self._spoke.__getitem__) == peer_id:
            return False
        self.joined(peer_id)
        self._spoke[peer_id] = next(self._clock)
        return True

    def rank(self, peer_id: str) -> tuple[int, int]:
        """Lower first: the latest speaker, ..., then those who never spoke by join."""
        if peer_id in self._spoke:
            return (0, -self._spoke[peer_id])
        return (1, self._joined.get(peer_id, 1 << 62))

    def last(self, owners: Iterable[str], n: int) -> set[str]:
        """The `n` best ranked of `owners` (all of them when n is 0)."""
        ranked = sorted(set(owners), key=self.rank)
        return set(ranked if n <= 0 else ranked[:n])


# A video consumer's share of its transport's bandwidth estimate when it cannot carry
# every consumer's layer (mediasoup consumer.setPriority; 1 is mediasoup's default):
# a shared screen first (its detail is the point), then the dominant speaker's camera.
PRIORITY_SCREEN = 3
PRIORITY_SPEAKER = 2
PRIORITY_CAMERA = 1


def priority_of(source: TrackSource, owner: str, speaker: str | None) -> int:
    """The priority of a video consumer of `owner`'s `source` (`speaker`: the best ranked
    camera owner among the subscriber's, SpeakerOrder.last(..., 1))."""
    if source == "screen":
        return PRIORITY_SCREEN
    return PRIORITY_SPEAKER if owner == speaker else PRIORITY_CAMERA


def spatial_with_last_n(
    spatial: int | None, source: TrackSource, owner: str, forwarded: set[str]
) -> int | None:
    """The layer for a tile's consumer: its tile's (`spatial`) when its owner is among
    the last N speakers or it is not a camera (a shared screen is always sharp), else
    the lowest."""
    if spatial is None or source != "video" or owner in forwarded:
        return spatial
    return 0
