"""Resource caps: what one participant, room or client address may hold at once.

`Limits` carries the caps (settings `MEDIAPLANE_MAX_*`, `MEDIAPLANE_WS_MAX_*`,
`MEDIAPLANE_WHIP_MAX_*`, docs/security.md#limits); its `check_*` methods refuse
with `LimitExceeded` (429 / `limit_exceeded`, naming the limit and its setting)
before the SFU is asked for anything. `Slots` counts open things per key (a client
address, a room) under a per-key and a total cap: a `Slot` is taken before the
thing opens and given back, exactly once, when it ends.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mediaplane.control.errors import LimitExceeded
from mediaplane.settings import Settings


def _default(name: str) -> int:
    """The setting's default: one source for the numbers."""
    value = Settings.model_fields[name].default
    assert isinstance(value, int)
    return value


def refuse(what: str, cap: int, per: str, setting: str) -> LimitExceeded:
    return LimitExceeded(f"limit reached: at most {cap} {what} {per} (MEDIAPLANE_{setting})")


@dataclass(frozen=True)
class Limits:
    transports_per_peer: int = _default("max_transports_per_peer")
    producers_per_peer_kind: int = _default("max_producers_per_peer_kind")
    consumers_per_peer: int = _default("max_consumers_per_peer")
    room_participants: int = _default("max_room_participants")
    room_producers: int = _default("max_room_producers")

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(
            transports_per_peer=s.max_transports_per_peer,
            producers_per_peer_kind=s.max_producers_per_peer_kind,
            consumers_per_peer=s.max_consumers_per_peer,
            room_participants=s.max_room_participants,
            room_producers=s.max_room_producers,
        )

    def check_transport(self, held: int) -> None:
        """`held`: the participant's open transports."""
        if held >= self.transports_per_peer:
            raise refuse(
                "transports", self.transports_per_peer, "per participant",
                "MAX_TRANSPORTS_PER_PEER",
            )  # fmt: skip

    def check_producer(self, kind: str, held_of_kind: int, in_room: int) -> None:
        """`held_of_kind`: the participant's producers of `kind`; `in_room`: the room's."""
        if held_of_kind >= self.producers_per_peer_kind:
            raise refuse(
                f"{kind} producers", self.producers_per_peer_kind, "per participant",
                "MAX_PRODUCERS_PER_PEER_KIND",
            )  # fmt: skip
        if in_room >= self.room_producers:
            raise refuse("producers", self.room_producers, "per room", "MAX_ROOM_PRODUCERS")

    def check_consumer(self, held: int) -> None:
        if held >= self.consumers_per_peer:
            raise refuse(
                "consumers", self.consumers_per_peer, "per participant", "MAX_CONSUMERS_PER_PEER"
            )

    def room_capacity(self, room_max: int) -> int:
        """A room's participant cap: its own `max_participants`, never over the server's."""
        return min(room_max, self.room_participants)


class Slot:
    """One taken slot of a `Slots`; `release` gives it back (again is a no-op)."""

    def __init__(self, slots: Slots, key: str) -> None:
        self.slots, self.key = slots, key
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.give_back(self.key)


class Slots:
    """Open things counted per key, under `per_key` each and `total` in all (None: no cap)."""

    def __init__(
        self, what: str, *, per_key: int, per: str, key_setting: str,
        total: int | None = None, total_setting: str = "",
    ) -> None:  # fmt: skip
        self.what, self.per = what, per
        self.per_key, self.key_setting = per_key, key_setting
        self.total, self.total_setting = total, total_setting
        self.counts: Counter[str] = Counter()
        self.in_use = 0

    def count(self, key: str) -> int:
        return self.counts[key]

    def take(self, key: str) -> Slot:
        if self.counts[key] >= self.per_key:
            raise refuse(self.what, self.per_key, self.per, self.key_setting)
        if self.total is not None and self.in_use >= self.total:
            raise refuse(self.what, self.total, "in all", self.total_setting)
        self.counts[key] += 1
        self.in_use += 1
        return Slot(self, key)

    def give_back(self, key: str) -> None:
        self.counts[key] -= 1
        self.in_use -= 1
        if self.counts[key] <= 0:
            del self.counts[key]
