"""The loop that keeps a pool (SFU nodes, media managers) in step with its Redis registry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

REDIS_ERRORS = (aioredis.ConnectionError, aioredis.TimeoutError, OSError)


async def watch_registry(what: str, refresh: Callable[[], Awaitable[None]], every_s: float) -> None:
    """Run `refresh` every `every_s` until cancelled (the pool owns the task).

    A Redis outage is logged and waited out: no node or manager is declared down
    because of our own outage.
    """
    while True:
        try:
            await refresh()
        except REDIS_ERRORS as e:
            log.warning("%s: registry unreadable (%s)", what, e)
        except Exception:
            log.exception("%s: refresh failed", what)
        await asyncio.sleep(every_s)
