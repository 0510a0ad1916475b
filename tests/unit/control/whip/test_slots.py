"""WHIP/WHEP session places (control/whip/slots.py): by address and by room together."""

from __future__ import annotations

import pytest

from mediaplane.control.errors import LimitExceeded
from mediaplane.control.whip.slots import WhipSlots


def test_a_session_takes_a_place_by_address_and_by_room() -> None:
    slots = WhipSlots(per_address=2, per_room=3, total=10)
    held = [slots.take("1.1.1.1", "r"), slots.take("1.1.1.1", "r")]
    with pytest.raises(LimitExceeded, match="WHIP_MAX_SESSIONS_PER_ADDRESS"):
        slots.take("1.1.1.1", "other")
    held.append(slots.take("2.2.2.2", "r"))
    with pytest.raises(LimitExceeded, match="WHIP_MAX_SESSIONS_PER_ROOM"):
        slots.take("3.3.3.3", "r")
    # The room refusal gave back the address place it had taken first.
    assert slots.by_address.count("3.3.3.3") == 0
    assert (slots.by_address.in_use, slots.by_room.count("r")) == (3, 3)
    for slot in held:
        slot.release()
        slot.release()
    assert slots.by_address.in_use == 0 and slots.by_room.in_use == 0


def test_the_total_cap() -> None:
    slots = WhipSlots(per_address=5, per_room=5, total=2)
    slots.take("a", "r1"), slots.take("b", "r2")
    with pytest.raises(LimitExceeded, match=r"at most 2 WHIP/WHEP sessions in all"):
        slots.take("c", "r3")
