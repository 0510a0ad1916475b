"""Shared state in Redis: rooms, peers, producers, and room event fan-out.

`StateStore` is the only code that touches Redis keys (all named in keys.py).
Pub/sub delivery is at-most-once; the hashes are the truth, and an instance
that reconnects re-reads them (see ControlPlane.resync).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel

from mediaplane.state import keys
from mediaplane.state.models import (
    MediaJobPlacement,
    MediaManagerRecord,
    PeerRecord,
    ProducerRecord,
    ResumeRecord,
    RoomRecord,
    SfuNodeRecord,
)

log = logging.getLogger(__name__)

# A resumable peer's media hash outlives no peer by more than this (its instance died
# and nobody came back: nothing else would delete it).
PEER_MEDIA_TTL_S = 24 * 3600


class StateStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._r = client

    @classmethod
    async def create(cls, url: str) -> StateStore:
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            health_check_interval=2,
            socket_connect_timeout=2,
            retry_on_timeout=True,
        )
        return cls(client)

    @property
    def redis(self) -> aioredis.Redis:
        return self._r

    async def close(self) -> None:
        await self._r.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
            return False

    # rooms
    async def put_room(self, room: RoomRecord) -> None:
        async with self._r.pipeline(transaction=True) as p:
            p.sadd(keys.rooms(), room.name)
            p.hset(keys.room(room.name), mapping={"json": room.model_dump_json()})
            await p.execute()

    async def update_room(self, room: RoomRecord) -> bool:
        """Rewrite a room only if it still exists (a deleted room is never resurrected)."""
        key = keys.room(room.name)
        async with self._r.pipeline(transaction=True) as p:
            try:
                await p.watch(key)
                if not await p.exists(key):
                    return False
                p.multi()  # type: ignore[no-untyped-call]
                p.hset(key, mapping={"json": room.model_dump_json()})
                await p.execute()
                return True
            except aioredis.WatchError:
                return False

    async def create_room(self, room: RoomRecord) -> bool:
        """Create unless it exists; True when created."""
        created = await self._r.hsetnx(keys.room(room.name), "json", room.model_dump_json())
        if created:
            await self._r.sadd(keys.rooms(), room.name)
        return bool(created)

    async def get_room(self, name: str) -> RoomRecord | None:
        raw = await self._r.hget(keys.room(name), "json")
        return RoomRecord.model_validate_json(raw) if raw else None

    async def list_rooms(self) -> list[RoomRecord]:
        names = sorted(str(n) for n in await self._r.smembers(keys.rooms()))
        out = []
        for name in names:
            room = await self.get_room(name)
            if room is not None:
                out.append(room)
        return out

    async def delete_room(self, name: str) -> None:
        room = await self.get_room(name)
        async with self._r.pipeline(transaction=True) as p:
            if room is not None and room.node_id:
                p.srem(keys.sfu_node_rooms(room.node_id), name)
            p.srem(keys.rooms(), name)
            p.delete(
                keys.room(name),
                keys.room_peers(name),
                keys.room_producers(name),
                keys.room_pipes(name),
            )
            await p.execute()

    async def place_room(
        self, name: str, choose: Callable[[RoomRecord], str | None]
    ) -> RoomRecord | None:
        """Give a room an SFU node, atomically across instances.

        `choose(record)` returns the node the room should be on: its current one
        when that is alive, another otherwise (None when no node is up). A new
        node clears the router fields. Returns the record as stored, or None if
        the room does not exist.
        """
        key = keys.room(name)
        while True:
            async with self._r.pipeline(transaction=True) as p:
                try:
                    await p.watch(key)
                    raw = await p.hget(key, "json")
                    if not raw:
                        return None
                    room = RoomRecord.model_validate_json(raw)
                    node = choose(room)
                    if node == room.node_id:
                        return room
                    old = room.node_id
                    room.node_id, room.router_id, room.worker_pid = node, None, None
                    room.extra_routers = {}
                    p.multi()  # type: ignore[no-untyped-call]
                    p.hset(key, mapping={"json": room.model_dump_json()})
                    if old:
                        p.srem(keys.sfu_node_rooms(old), name)
                    if node:
                        p.sadd(keys.sfu_node_rooms(node), name)
                    await p.execute()
                    return room
                except aioredis.WatchError:
                    continue

    async def get_pipe(self, room: str, producer_id: str, router_id: str) -> str | None:
        raw = await self._r.hget(keys.room_pipes(room), f"{producer_id}>{router_id}")
        return str(raw) if raw else None

    async def put_pipe(self, room: str, producer_id: str, router_id: str, piped_id: str) -> str:
        """Keep the first pipe of a producer into a router; returns the one kept."""
        field = f"{producer_id}>{router_id}"
        if await self._r.hsetnx(keys.room_pipes(room), field, piped_id):
            return piped_id
        return str(await self._r.hget(keys.room_pipes(room), field))

    async def remove_pipes(self, room: str, producer_id: str) -> None:
        fields = [f async for f in self._r.hscan_iter(keys.room_pipes(room), f"{producer_id}>*")]
        if fields:
            await self._r.hdel(keys.room_pipes(room), *[str(f[0]) for f in fields])

    # SFU nodes
    async def register_sfu_node(self, node: SfuNodeRecord, ttl_s: float) -> None:
        async with self._r.pipeline(transaction=True) as p:
            p.sadd(keys.sfu_nodes(), node.node_id)
            p.zrem(keys.sfu_nodes_down(), node.node_id)
            p.set(keys.sfu_node(node.node_id), node.model_dump_json(), px=int(ttl_s * 1000))
            await p.execute()

    async def deregister_sfu_node(self, node_id: str) -> None:
        async with self._r.pipeline(transaction=True) as p:
            p.srem(keys.sfu_nodes(), node_id)
            p.delete(keys.sfu_node(node_id))
            await p.execute()

    async def sfu_nodes(self) -> tuple[dict[str, SfuNodeRecord], list[str]]:
        """(live nodes by id, ids still in the set whose heartbeat expired)."""
        ids = sorted(str(i) for i in await self._r.smembers(keys.sfu_nodes()))
        if not ids:
            return {}, []
        raws = await self._r.mget([keys.sfu_node(i) for i in ids])
        alive: dict[str, SfuNodeRecord] = {}
        stale: list[str] = []
        for node_id, raw in zip(ids, raws, strict=True):
            if raw:
                alive[node_id] = SfuNodeRecord.model_validate_json(raw)
            else:
                stale.append(node_id)
        return alive, stale

    async def mark_sfu_node_down(self, node_id: str) -> bool:
        """Move a node from the live set to the down set; True for the one caller that did."""
        if not await self._r.srem(keys.sfu_nodes(), node_id):
            return False
        await self._r.zadd(keys.sfu_nodes_down(), {node_id: time.time()})
        return True

    async def sfu_nodes_down(self) -> list[str]:
        return [str(i) for i in await self._r.zrange(keys.sfu_nodes_down(), 0, -1)]

    async def sfu_node_room_counts(self, node_ids: list[str]) -> dict[str, int]:
        async with self._r.pipeline(transaction=False) as p:
            for node_id in node_ids:
                p.scard(keys.sfu_node_rooms(node_id))
            counts = await p.execute()
        return {n: int(c) for n, c in zip(node_ids, counts, strict=True)}

    # media managers
    async def register_media_manager(self, manager: MediaManagerRecord, ttl_s: float) -> None:
        async with self._r.pipeline(transaction=True) as p:
            p.sadd(keys.media_managers(), manager.manager_id)
            p.zrem(keys.media_managers_down(), manager.manager_id)
            p.set(
                keys.media_manager(manager.manager_id),
                manager.model_dump_json(),
                px=int(ttl_s * 1000),
            )
            await p.execute()

    async def deregister_media_manager(self, manager_id: str) -> None:
        async with self._r.pipeline(transaction=True) as p:
            p.srem(keys.media_managers(), manager_id)
            p.delete(keys.media_manager(manager_id))
            await p.execute()

    async def media_managers(self) -> tuple[dict[str, MediaManagerRecord], list[str]]:
        """(live managers by id, ids still in the set whose heartbeat expired)."""
        ids = sorted(str(i) for i in await self._r.smembers(keys.media_managers()))
        if not ids:
            return {}, []
        raws = await self._r.mget([keys.media_manager(i) for i in ids])
        alive: dict[str, MediaManagerRecord] = {}
        stale: list[str] = []
        for manager_id, raw in zip(ids, raws, strict=True):
            if raw:
                alive[manager_id] = MediaManagerRecord.model_validate_json(raw)
            else:
                stale.append(manager_id)
        return alive, stale

    async def mark_media_manager_down(self, manager_id: str) -> bool:
        """Move a manager to the down set; True for the one caller that did."""
        if not await self._r.srem(keys.media_managers(), manager_id):
            return False
        await self._r.zadd(keys.media_managers_down(), {manager_id: time.time()})
        return True

    async def media_managers_down(self) -> list[str]:
        return [str(i) for i in await self._r.zrange(keys.media_managers_down(), 0, -1)]

    async def place_media_job(self, placement: MediaJobPlacement) -> None:
        async with self._r.pipeline(transaction=True) as p:
            p.set(keys.media_job(placement.job_id), placement.model_dump_json())
            p.sadd(keys.media_manager_jobs(placement.manager_id), placement.job_id)
            await p.execute()

    async def get_media_job(self, job_id: str) -> MediaJobPlacement | None:
        raw = await self._r.get(keys.media_job(job_id))
        return MediaJobPlacement.model_validate_json(raw) if raw else None

    async def media_jobs_of(self, manager_id: str) -> list[MediaJobPlacement]:
        ids = sorted(str(i) for i in await self._r.smembers(keys.media_manager_jobs(manager_id)))
        out = []
        for job_id in ids:
            if (placement := await self.get_media_job(job_id)) is not None:
                out.append(placement)
        return out

    async def fail_media_jobs(
        self, manager_id: str, reason: str, last_seen: MediaManagerRecord | None
    ) -> list[str]:
        """Mark the jobs a vanished manager was running failed; their ids.

        Running: listed in its last heartbeat (`last_seen`), or placed after it.
        A job it had finished keeps its outcome (and its file).
        """
        failed = []
        for placement in await self.media_jobs_of(manager_id):
            if last_seen is not None and not (
                placement.job_id in last_seen.running or placement.placed_at > last_seen.updated_at
            ):
                continue
            if placement.state != "failed":
                placement.state, placement.error = "failed", reason
                placement.failed_at = time.time()
                await self._r.set(keys.media_job(placement.job_id), placement.model_dump_json())
            failed.append(placement.job_id)
        return failed

    async def forget_media_job(self, job_id: str, manager_id: str) -> None:
        """A job that ended on a live manager needs no placement kept for failover."""
        await self._r.srem(keys.media_manager_jobs(manager_id), job_id)

    # peers
    async def put_peer(self, room: str, peer: PeerRecord) -> None:
        await self._r.hset(keys.room_peers(room), peer.peer_id, peer.model_dump_json())

    async def remove_peer(self, room: str, peer_id: str) -> None:
        await self._r.hdel(keys.room_peers(room), peer_id)

    async def list_peers(self, room: str) -> list[PeerRecord]:
        raw = await self._r.hgetall(keys.room_peers(room))
        return [PeerRecord.model_validate_json(v) for v in raw.values()]

    async def count_peers(self, room: str) -> int:
        return int(await self._r.hlen(keys.room_peers(room)))

    async def get_peer(self, room: str, peer_id: str) -> PeerRecord | None:
        raw = await self._r.hget(keys.room_peers(room), peer_id)
        return PeerRecord.model_validate_json(raw) if raw else None

    async def update_peer_if_owned(
        self, room: str, peer_id: str, instance: str, update: dict[str, Any]
    ) -> bool:
        """Rewrite a peer's record with `update` only while `instance` owns it (a peer
        resumed through another instance is that one's); False when it does not."""
        key = keys.room_peers(room)
        while True:  # the hash is the room's: another peer's write is a retry, not a "no"
            async with self._r.pipeline(transaction=True) as p:
                try:
                    await p.watch(key)
                    raw = await p.hget(key, peer_id)
                    if not raw:
                        return False
                    record = PeerRecord.model_validate_json(raw)
                    if record.instance != instance:
                        return False
                    p.multi()  # type: ignore[no-untyped-call]
                    p.hset(key, peer_id, record.model_copy(update=update).model_dump_json())
                    await p.execute()
                    return True
                except aioredis.WatchError:
                    continue

    # a resumable peer's SFU objects (keys.room_peer_media)
    async def put_peer_media(self, room: str, peer_id: str, field: str, value: str) -> None:
        key = keys.room_peer_media(room, peer_id)
        async with self._r.pipeline(transaction=True) as p:
            p.hset(key, field, value)
            p.expire(key, PEER_MEDIA_TTL_S)
            await p.execute()

    async def remove_peer_media(self, room: str, peer_id: str, field: str | None = None) -> None:
        key = keys.room_peer_media(room, peer_id)
        if field is None:
            await self._r.delete(key)
        else:
            await self._r.hdel(key, field)

    async def get_peer_media(self, room: str, peer_id: str) -> dict[str, str]:
        raw = await self._r.hgetall(keys.room_peer_media(room, peer_id))
        return {str(k): str(v) for k, v in raw.items()}

    # resume tokens (keys.resume_token), by the SHA-256 of the token
    async def put_resume(self, token_hash: str, record: ResumeRecord, ttl_s: float) -> None:
        await self._r.set(
            keys.resume_token(token_hash), record.model_dump_json(), px=max(1, int(ttl_s * 1000))
        )

    async def expire_resume(self, token_hash: str, ttl_s: float) -> None:
        await self._r.pexpire(keys.resume_token(token_hash), max(1, int(ttl_s * 1000)))

    async def take_resume(
        self, token_hash: str, room: str, identity: str, tombstone_ttl_s: float
    ) -> ResumeRecord | None:
        """The token's record; a `live` one bound to `room` and `identity` becomes `used`
        atomically (one resume wins). A record bound elsewhere is returned unchanged."""
        key = keys.resume_token(token_hash)
        async with self._r.pipeline(transaction=True) as p:
            while True:
                try:
                    await p.watch(key)
                    raw = await p.get(key)
                    if not raw:
                        return None
                    record = ResumeRecord.model_validate_json(raw)
                    if record.state != "live" or (record.room, record.identity) != (
                        room,
                        identity,
                    ):
                        return record
                    p.multi()  # type: ignore[no-untyped-call]
                    used = record.model_copy(update={"state": "used"})
                    p.set(key, used.model_dump_json(), px=max(1, int(tombstone_ttl_s * 1000)))
                    await p.execute()
                    return record
                except aioredis.WatchError:
                    continue

    # producers
    async def put_producer(self, room: str, producer: ProducerRecord) -> None:
        await self._r.hset(
            keys.room_producers(room), producer.producer_id, producer.model_dump_json()
        )

    async def remove_producer(self, room: str, producer_id: str) -> None:
        await self._r.hdel(keys.room_producers(room), producer_id)

    async def list_producers(self, room: str) -> list[ProducerRecord]:
        raw = await self._r.hgetall(keys.room_producers(room))
        return [ProducerRecord.model_validate_json(v) for v in raw.values()]

    async def count_producers(self, room: str) -> int:
        return int(await self._r.hlen(keys.room_producers(room)))

    async def get_producer(self, room: str, producer_id: str) -> ProducerRecord | None:
        raw = await self._r.hget(keys.room_producers(room), producer_id)
        return ProducerRecord.model_validate_json(raw) if raw else None

    # events
    async def publish(self, channel: str, event: BaseModel | dict[str, Any]) -> None:
        body = event.model_dump_json() if isinstance(event, BaseModel) else json.dumps(event)
        await self._r.publish(channel, body)

    async def heartbeat(self, instance_id: str, ttl_s: int) -> None:
        await self._r.set(keys.instance(instance_id), "1", ex=ttl_s)

    async def instance_alive(self, instance_id: str) -> bool:
        """The instance's heartbeat has not expired."""
        return bool(await self._r.exists(keys.instance(instance_id)))

    async def subscribe(self, *channels: str) -> AsyncIterator[tuple[str, str]]:
        """Yield (channel, data) until cancelled or the connection drops."""
        pubsub = self._r.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*channels)
            async for msg in pubsub.listen():
                if msg.get("type") == "message":
                    yield str(msg["channel"]), str(msg["data"])
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
