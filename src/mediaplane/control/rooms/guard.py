"""The one place that turns a lost Redis or SFU connection into `Unavailable` (503).

Every call the rooms package makes to Redis or the SFU on behalf of a request
goes through `redis_call` / `sfu_call`; signaling and WHIP use them too for the
SFU calls particular to them. Background work (leave, release, resync) catches
`REDIS_ERRORS` itself: it has nobody to answer.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio as aioredis

from mediaplane.control.errors import REDIS_UNAVAILABLE, Unavailable
from mediaplane.sfu import SfuConnectionError

T = TypeVar("T")

REDIS_ERRORS = (aioredis.ConnectionError, aioredis.TimeoutError, OSError)


async def redis_call(coro: Awaitable[T]) -> T:
    try:
        return await coro
    except REDIS_ERRORS:
        raise Unavailable(REDIS_UNAVAILABLE) from None


async def sfu_call(coro: Awaitable[T]) -> T:
    try:
        return await coro
    except SfuConnectionError as e:
        raise Unavailable(f"the media server is unavailable: {e}") from None
