from __future__ import annotations

from mediaplane.control.rate_limit import RateLimit


def test_a_key_gets_its_window_then_waits() -> None:
    limit = RateLimit(3, window_s=60)
    assert [limit.allow("a", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limit.allow("b", now=3)  # another key has its own window
    assert 56 < limit.retry_after_s("a", now=3) <= 57
    assert limit.allow("a", now=60.5)  # the first hit left the window


def test_the_keys_kept_are_bounded() -> None:
    limit = RateLimit(1, window_s=60, max_keys=100)
    for i in range(1000):
        limit.allow(f"10.0.{i // 256}.{i % 256}", now=0)
    assert limit.allow("10.0.0.0", now=1)  # forgotten: the oldest keys go first
    assert not limit.allow("10.0.3.231", now=1)  # recent: still counted
