"""A per-key sliding-window rate limit (one instance's memory: a key is a client address).

Used by the open-join token endpoint. Keys kept are bounded: past `max_keys`, the key
seen longest ago is forgotten, so a flood of addresses cannot grow memory without end.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque


class RateLimit:
    def __init__(self, per_window: int, window_s: float = 60.0, max_keys: int = 10000) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count one hit for `key`; False (not counted) when the window is full."""
        t = time.monotonic() if now is None else now
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= t - self.window_s:
            hits.popleft()
        self._hits[key] = hits  # most recently seen last
        while len(self._hits) > self.max_keys:
            self._hits.popitem(last=False)
        if len(hits) >= self.per_window:
            return False
        hits.append(t)
        return True

    def retry_after_s(self, key: str, now: float | None = None) -> float:
        t = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        if not hits or len(hits) < self.per_window:
            return 0.0
        return max(0.0, hits[0] + self.window_s - t)
