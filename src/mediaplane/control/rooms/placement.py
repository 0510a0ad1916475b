"""Where a room runs: its SFU node, its routers and workers, and their release.

A room is placed on a node (kept there while the node is alive, else the
least-loaded live one) and gets one router there, shared by every instance
(`router.create` of the room name returns the same router). A room spans
workers when its routers hold `span_after_peers` participants each: the next
router is `{room}~{n}` on a worker the room is not on yet (avoidWorkerPids),
and producers reach the other routers by pipeToRouter (`usable_producer`).
An emptied room's routers are released after its `empty_timeout_s`; a room a join
created (`auto`) is then deleted from Redis too (room.deleted webhook, `auto: true`).

Tasks: one delayed release per emptied room and one observer close per
dropped room, spawned on the tasks the RoomManager owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Literal

from mediaplane.control.errors import NotFound, Unavailable
from mediaplane.control.rooms.guard import REDIS_ERRORS, redis_call, sfu_call
from mediaplane.control.rooms.peers import LocalPeer, LocalRoom
from mediaplane.control.sfu_pool import SfuPool
from mediaplane.control.tasks import OwnedTasks
from mediaplane.sfu import SfuClient, SfuError, SfuRpcError
from mediaplane.state.models import PeerRecord, ProducerRecord, RoomRecord
from mediaplane.state.store import StateStore
from mediaplane.wire.ids import Json

log = logging.getLogger(__name__)


def span_router(
    peers: list[PeerRecord], joining: str, extra_routers: dict[str, int], span_after: int
) -> str | Literal[True] | None:
    """Which router a joining participant goes to in a spanning room.

    None: the room's first router; a router id: that further router; True: every
    router holds `span_after` participants, a new one is needed. `peers` are the
    room's peers (the joining one, `joining`, is not counted; nor is an ingress).
    """
    counts: dict[str | None, int] = {}
    for p in peers:
        if p.kind == "participant" and p.peer_id != joining:
            counts[p.router_id] = counts.get(p.router_id, 0) + 1
    if counts.get(None, 0) < span_after:
        return None
    for router_id in extra_routers:
        if counts.get(router_id, 0) < span_after:
            return router_id
    return True


class Placement:
    def __init__(
        self,
        store: StateStore,
        pool: SfuPool,
        tasks: OwnedTasks,
        *,
        span_after_peers: int | None = None,
        notify: Callable[[str, Json], object] = lambda _name, _data: None,
    ) -> None:
        self.store = store
        self.notify = notify
        self.pool = pool
        self.tasks = tasks
        # Participants per router before a room spans another worker (None: never).
        self.span_after_peers = span_after_peers
        self.rooms: dict[str, LocalRoom] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._release: dict[str, asyncio.Task[None]] = {}

    def lock(self, room: str) -> asyncio.Lock:
        """Held while this instance places, joins into or releases the room."""
        return self._locks.setdefault(room, asyncio.Lock())

    async def get_room(self, name: str) -> RoomRecord:
        room = await redis_call(self.store.get_room(name))
        if room is None:
            raise NotFound(f"room {name!r} does not exist")
        return room

    async def room_sfu(self, name: str) -> SfuClient:
        """The SFU client of the node a room is placed on (any instance's room)."""
        local = self.rooms.get(name)
        if local is not None:
            return local.sfu
        room = await self.get_room(name)
        return self.pool.client(room.node_id or (await self.pool.least_loaded()))

    async def place(self, name: str) -> RoomRecord | None:
        """Keep the room on its node while that is alive, else the least-loaded live one."""
        candidate = await self.pool.least_loaded()
        return await self.store.place_room(
            name, lambda r: r.node_id if self.pool.alive(r.node_id) else candidate
        )

    async def local_room(self, room: RoomRecord) -> LocalRoom:
        """The room's router here: placed and created on first use."""
        local = self.rooms.get(room.name)
        if local is not None:
            return local
        placed = await redis_call(self.place(room.name))
        if placed is None:
            raise NotFound(f"room {room.name!r} does not exist")
        if placed.node_id is None:
            raise Unavailable("no SFU node is up to host this room")
        room = placed
        node_id = placed.node_id
        sfu = self.pool.client(node_id)
        router = await sfu_call(sfu.create_router(room.name))
        if room.router_id != router.router_id:
            room.router_id, room.worker_pid, room.empty_since = (
                router.router_id,
                router.worker_pid,
                None,
            )
            await redis_call(self.store.update_room(room))
        local = LocalRoom(room.name, router.router_id, router.rtp_capabilities, sfu, node_id)
        with contextlib.suppress(SfuError):
            local.speaker_observer = await sfu.create_active_speaker_observer(router.router_id)
            for p in await redis_call(self.store.list_producers(room.name)):
                if p.kind == "audio":
                    with contextlib.suppress(SfuRpcError):
                        await sfu.observer_add_producer(local.speaker_observer, p.producer_id)
        self.rooms[room.name] = local
        log.info("room placed room=%s node=%s router=%s", room.name, node_id, router.router_id)
        return local

    @contextlib.asynccontextmanager
    async def joining(self, room: RoomRecord) -> AsyncIterator[LocalRoom]:
        """The room's router here, kept while a peer is being added to it: a leave
        that empties the room meanwhile does not drop it (its check is `unused`).
        A join that fails leaves the room as it found it (dropped when unused)."""
        local = await self.local_room(room)
        local.joining += 1
        try:
            yield local
        finally:
            local.joining -= 1
            if local.unused and self.rooms.get(local.name) is local:
                await self.forget_if_empty(local.name)

    async def assign_router(self, local: LocalRoom, peer: LocalPeer) -> Json:
        """Set the router a joining participant uses; returns its RTP capabilities."""
        peer.router_id = None
        if self.span_after_peers is None or peer.kind != "participant":
            return local.rtp_capabilities
        room = await self.get_room(local.name)
        peers = await redis_call(self.store.list_peers(local.name))
        chosen = span_router(peers, peer.peer_id, room.extra_routers, self.span_after_peers)
        if chosen is None:
            return local.rtp_capabilities
        if isinstance(chosen, str):
            peer.router_id = chosen
            return local.rtp_capabilities
        key = f"{local.name}~{len(room.extra_routers) + 1}"
        # On another worker than the room's routers: spreading the room is the point.
        busy = [pid for pid in (room.worker_pid, *room.extra_routers.values()) if pid]
        router = await sfu_call(local.sfu.create_router(key, avoid_workers=busy))
        room.extra_routers[router.router_id] = router.worker_pid
        await redis_call(self.store.update_room(room))
        log.info(
            "room=%s spans router=%s worker=%d (%d routers)",
            local.name, router.router_id, router.worker_pid, len(room.extra_routers) + 1,
        )  # fmt: skip
        peer.router_id = router.router_id
        return router.rtp_capabilities

    async def usable_producer(
        self, room: str, sfu: SfuClient, producer: ProducerRecord, router_id: str
    ) -> str:
        """The id under which `producer` can be consumed on `router_id` (piped if needed)."""
        record = await self.get_room(room)
        source = producer.router_id or record.router_id
        if source is None or source == router_id:
            return producer.producer_id
        piped = await redis_call(self.store.get_pipe(room, producer.producer_id, router_id))
        if piped is not None:
            return piped
        info = await sfu_call(sfu.pipe_producer(producer.producer_id, router_id))
        kept = await redis_call(
            self.store.put_pipe(room, producer.producer_id, router_id, info.producer_id)
        )
        if kept != info.producer_id:  # another instance piped it first
            with contextlib.suppress(SfuError):
                await sfu.close_producer(info.producer_id)
        log.info(
            "producer=%s piped into router=%s as %s room=%s",
            producer.producer_id, router_id, kept, room,
        )  # fmt: skip
        return kept

    async def close_routers(self, room: RoomRecord, why: str) -> None:
        """Close every router of the room (when its node is still alive)."""
        if not self.pool.alive(room.node_id):
            return
        for router_id in [room.router_id, *room.extra_routers]:
            if router_id:
                with contextlib.suppress(SfuError):
                    await self.pool.client(room.node_id).close_router(router_id)
                log.info("router closed room=%s router=%s (%s)", room.name, router_id, why)

    # a room with no peers here -----------------------------------------------------
    def drop_local_room(self, local: LocalRoom) -> None:
        self.rooms.pop(local.name, None)
        if local.speaker_observer:
            observer, sfu = local.speaker_observer, local.sfu

            async def close_observer() -> None:
                with contextlib.suppress(SfuError):
                    await sfu.request("observer.close", {"observerId": observer})

            self.tasks.spawn(close_observer(), f"observer-close {local.name}")

    async def forget_if_empty(self, name: str) -> None:
        """Undo a placement no peer used (a refused WHIP/WHEP offer)."""
        local = self.rooms.get(name)
        if local is not None and local.unused:
            self.drop_local_room(local)
            with contextlib.suppress(*REDIS_ERRORS):
                if await self.store.count_peers(name) == 0:
                    self.schedule_release(name)

    def cancel_release(self, name: str) -> None:
        if task := self._release.pop(name, None):
            task.cancel()

    def schedule_release(self, name: str) -> None:
        """Release the room's routers once it has stayed empty for its `empty_timeout_s`."""
        if name not in self._release:
            self._release[name] = self.tasks.spawn(self._release_later(name), f"release {name}")

    async def _release_later(self, name: str) -> None:
        try:
            room = await self.store.get_room(name)
            if room is None:
                return
            room.empty_since = room.empty_since or time.time()
            await self.store.update_room(room)
            await asyncio.sleep(room.empty_timeout_s)
            async with self.lock(name):
                room = await self.store.get_room(name)
                if room is None or await self.store.count_peers(name) > 0 or name in self.rooms:
                    return
                await self.close_routers(room, "released")
                if room.auto:
                    await self.store.delete_room(name)
                    self.notify("room.deleted", {"room": name, "auto": True})
                    log.info("room deleted room=%s (made by a join, empty)", name)
                    return
                room.router_id, room.worker_pid, room.extra_routers = None, None, {}
                await self.store.update_room(room)
                # An empty room no longer counts against its node's load.
                await self.store.place_room(name, lambda _r: None)
        except REDIS_ERRORS as e:
            log.warning("router release of room=%s skipped: %s", name, e)
        finally:
            self._release.pop(name, None)
