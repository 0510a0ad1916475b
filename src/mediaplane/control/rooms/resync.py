"""Recovering rooms: a Redis restart, an SFU node down, a worker died.

- Redis lost its data (a new run_id, or an outage ended): this instance writes
  its rooms, peers and producers back (`resync`). Every instance does the same
  for what it owns, so the shared truth is whole again.
- An SFU node stopped its heartbeat: its rooms are placed on another node and
  their peers here asked to rejoin (`rejoin {reason, node}`).
- A worker died (its routers with it): the rooms on it rejoin on the same node.

Task: `watch_redis()` runs for the RoomManager's lifetime (also the instance's
heartbeat key).
"""

from __future__ import annotations

import asyncio
import logging

from mediaplane.control.rooms.guard import REDIS_ERRORS
from mediaplane.control.rooms.peers import LocalRoom
from mediaplane.control.rooms.placement import Placement
from mediaplane.control.rooms.sessions import Sessions
from mediaplane.state.models import RoomRecord
from mediaplane.state.store import StateStore
from mediaplane.wire.ids import Json

log = logging.getLogger(__name__)


class Resync:
    def __init__(
        self, store: StateStore, placement: Placement, sessions: Sessions, instance_id: str
    ) -> None:
        self.store = store
        self.placement = placement
        self.sessions = sessions
        self.rooms = placement.rooms
        self.instance_id = instance_id
        self.redis_ok = asyncio.Event()

    async def watch_redis(self) -> None:
        """Notice a Redis restart (new run_id or an outage) and write our state back."""
        run_id: str | None = None
        while True:
            try:
                info = await self.store.redis.info("server")
                current = str(info.get("run_id"))
                if run_id is not None and current != run_id:
                    await self.resync()
                run_id = current
                self.redis_ok.set()
                await self.store.heartbeat(self.instance_id, 5)
            except REDIS_ERRORS:
                if self.redis_ok.is_set():
                    log.warning("redis unreachable; will resync when it is back")
                self.redis_ok.clear()
                run_id = run_id or "lost"
            await asyncio.sleep(0.5)

    async def resync(self) -> None:
        """Write this instance's rooms, peers and producers back into Redis."""
        for local in list(self.rooms.values()):
            await self._pin_room(local)
            for peer in local.peers.values():
                await self.store.put_peer(local.name, peer.record())
                for record in peer.producers.values():
                    await self.store.put_producer(local.name, record)
        log.info("resynced %d rooms into redis", len(self.rooms))

    async def _pin_room(self, local: LocalRoom) -> None:
        """Write a room back on the node and router it runs on here (after a Redis loss)."""
        room = await self.store.get_room(local.name) or RoomRecord(name=local.name)
        if room.node_id != local.node_id:
            room.node_id = None  # placed (and counted on its node) just below
        await self.store.put_room(room)
        node = local.node_id
        placed = await self.store.place_room(local.name, lambda _r: node)
        if placed is not None and placed.router_id != local.router_id:
            placed.router_id = local.router_id
            await self.store.put_room(placed)

    async def on_node_down(self, node_id: str) -> None:
        """An SFU node's heartbeat stopped: its rooms move, their peers rejoin there."""
        for local in [r for r in self.rooms.values() if r.node_id == node_id]:
            target: str | None = None
            try:
                placed = await self.placement.place(local.name)
                target = placed.node_id if placed is not None else None
            except REDIS_ERRORS as e:
                log.warning("room=%s not re-placed after node=%s down: %s", local.name, node_id, e)
            log.warning("room=%s moves from node=%s to node=%s", local.name, node_id, target)
            await self.rejoin_room(local.name, f"SFU node {node_id} is down", node=target)

    async def rejoin_room(self, room: str, reason: str, *, node: str | None = None) -> None:
        """The room's router is gone: every local peer must join again."""
        local = self.rooms.pop(room, None)
        if local is None:
            return
        log.warning("router lost room=%s: asking %d peers to rejoin", room, len(local.peers))
        for peer in list(local.peers.values()):
            await self.sessions.teardown(peer, close_on=None, left_reason=None)
            data: Json = {"reason": reason}
            if node is not None:
                data["node"] = node
            await peer.send_event("rejoin", data)
