"""JSON records in Redis, shared by the recording, egress and injection services.

Each record is one string key (`mp:<noun>:{id}`) plus its id in a sorted set scored
by the request time (the list and its time filter), written in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import redis.asyncio as aioredis
from pydantic import BaseModel

from mediaplane.control.errors import NotFound


class StoredRecord(BaseModel):
    id: str
    room: str
    requested_at: float


R = TypeVar("R", bound=StoredRecord)


class RecordStore(Generic[R]):
    def __init__(
        self,
        redis: aioredis.Redis,
        model: type[R],
        noun: str,
        key: Callable[[str], str],
        index: str,
    ) -> None:
        self.redis, self.model, self.noun, self.key, self.index = redis, model, noun, key, index

    async def save(self, rec: R) -> None:
        async with self.redis.pipeline(transaction=True) as p:
            p.set(self.key(rec.id), rec.model_dump_json())
            p.zadd(self.index, {rec.id: rec.requested_at})
            await p.execute()

    async def load(self, rec_id: str) -> R | None:
        raw = await self.redis.get(self.key(rec_id))
        return self.model.model_validate_json(raw) if raw else None

    async def get(self, room: str, rec_id: str) -> R:
        rec = await self.load(rec_id)
        if rec is None or rec.room != room:
            raise NotFound(f"no {self.noun} {rec_id!r} in room {room!r}")
        return rec

    async def list(
        self, room: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[R]:
        ids = await self.redis.zrangebyscore(self.index, since or "-inf", until or "+inf")
        out = []
        for rec_id in ids:
            rec = await self.load(str(rec_id))
            if rec is not None and (room is None or rec.room == room):
                out.append(rec)
        return out

    async def delete(self, rec_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as p:
            p.delete(self.key(rec_id))
            p.zrem(self.index, rec_id)
            await p.execute()


def confined_file(root: Path, relative: str | None, what: str) -> Path:
    """A record's file under `root`; 404 when it has none, is gone or would leave root."""
    if relative is None:
        raise NotFound(f"{what} has no file")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise NotFound(f"the file of {what} is not there")
    return path
