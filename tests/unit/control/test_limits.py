"""The caps' counting (control/limits.py): refusal at the cap, not one before, and slots
given back exactly once."""

from __future__ import annotations

import pytest

from mediaplane.control.errors import LimitExceeded
from mediaplane.control.limits import Limits, Slots
from mediaplane.settings import Settings


def test_defaults_are_the_settings_defaults() -> None:
    s = Settings(env="test")
    assert Limits() == Limits.from_settings(s)
    assert Limits().transports_per_peer == 4  # send + recv, and one spare pair


def test_peer_caps_refuse_at_the_cap_and_name_the_setting() -> None:
    limits = Limits(transports_per_peer=2, producers_per_peer_kind=1, consumers_per_peer=3)
    limits.check_transport(1)
    with pytest.raises(LimitExceeded) as err:
        limits.check_transport(2)
    assert err.value.status == 429 and err.value.code == "limit_exceeded"
    assert "at most 2 transports per participant" in err.value.message
    assert "MEDIAPLANE_MAX_TRANSPORTS_PER_PEER" in err.value.message
    limits.check_producer("video", 0, 0)
    with pytest.raises(LimitExceeded, match="at most 1 video producers per participant"):
        limits.check_producer("video", 1, 0)
    limits.check_consumer(2)
    with pytest.raises(LimitExceeded, match="MAX_CONSUMERS_PER_PEER"):
        limits.check_consumer(3)


def test_room_caps() -> None:
    limits = Limits(room_producers=5, room_participants=10)
    limits.check_producer("audio", 0, 4)
    with pytest.raises(LimitExceeded, match=r"at most 5 producers per room"):
        limits.check_producer("audio", 0, 5)
    assert limits.room_capacity(50) == 10  # the server's cap wins over a room's own
    assert limits.room_capacity(3) == 3


def slots() -> Slots:
    return Slots("sockets", per_key=2, per="per address", key_setting="PER", total=3,
                 total_setting="ALL")  # fmt: skip


def test_slots_cap_per_key_and_in_all() -> None:
    s = slots()
    a1, a2 = s.take("a"), s.take("a")
    with pytest.raises(LimitExceeded, match=r"at most 2 sockets per address \(MEDIAPLANE_PER\)"):
        s.take("a")
    s.take("b")
    with pytest.raises(LimitExceeded, match=r"at most 3 sockets in all \(MEDIAPLANE_ALL\)"):
        s.take("c")
    assert (s.count("a"), s.count("b"), s.count("c"), s.in_use) == (2, 1, 0, 3)
    a1.release()
    s.take("c")  # a place given back is usable by anyone
    a2.release()
    assert s.count("a") == 0 and "a" not in s.counts  # no key left behind


def test_a_slot_is_given_back_once() -> None:
    s = slots()
    slot = s.take("a")
    slot.release()
    slot.release()
    assert s.in_use == 0 and s.count("a") == 0
    s.take("a"), s.take("a")  # both places are there again, not more
    with pytest.raises(LimitExceeded):
        s.take("a")


def test_a_refused_take_holds_nothing() -> None:
    s = slots()
    s.take("a"), s.take("a")
    for _ in range(5):
        with pytest.raises(LimitExceeded):
            s.take("a")
    assert s.in_use == 2
