"""WHIP/WHEP sessions counted per client address, per room and in all (control/limits.py).

A session takes its `SessionSlot` before anything is created for it (the join, the
transport) and gives it back when it ends or is refused; giving back twice is a no-op.
"""

from __future__ import annotations

from mediaplane.control.limits import Slot, Slots
from mediaplane.settings import Settings


class SessionSlot:
    def __init__(self, by_address: Slot, by_room: Slot) -> None:
        self.by_address, self.by_room = by_address, by_room

    def release(self) -> None:
        self.by_address.release()
        self.by_room.release()


class WhipSlots:
    def __init__(self, *, per_address: int, per_room: int, total: int) -> None:
        self.by_address = Slots(
            "WHIP/WHEP sessions", per_key=per_address, per="per client address",
            key_setting="WHIP_MAX_SESSIONS_PER_ADDRESS",
            total=total, total_setting="WHIP_MAX_SESSIONS",
        )  # fmt: skip
        self.by_room = Slots(
            "WHIP/WHEP sessions", per_key=per_room, per="per room",
            key_setting="WHIP_MAX_SESSIONS_PER_ROOM",
        )  # fmt: skip

    @classmethod
    def from_settings(cls, s: Settings) -> WhipSlots:
        return cls(
            per_address=s.whip_max_sessions_per_address,
            per_room=s.whip_max_sessions_per_room,
            total=s.whip_max_sessions,
        )

    def take(self, address: str, room: str) -> SessionSlot:
        by_address = self.by_address.take(address)
        try:
            by_room = self.by_room.take(room)
        except BaseException:
            by_address.release()
            raise
        return SessionSlot(by_address, by_room)
