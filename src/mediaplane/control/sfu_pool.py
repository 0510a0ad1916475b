"""The SFU nodes a control plane uses, and which one a new room goes to.

Two modes:
- static: one SFU at a fixed URL (`mediaplane up`, most tests). Its node id is
  `static`; a lost connection is the client's to reconnect, never "node down".
- redis: nodes register themselves (mediaplane.sfu.node). A task owned by the
  pool polls `mp:sfu:nodes` every `poll_s`, connects to new nodes, and treats
  a node whose heartbeat key expired as down: the first instance to notice
  moves it to `mp:sfu:nodes:down` and publishes `sfuNodeDown` on `mp:events`;
  every instance closes its client and calls `on_node_down` listeners (the
  RoomManager then asks its peers in that node's rooms to rejoin).

Placement: the live node with the fewest rooms placed on it
(`mp:sfu:node:{id}:rooms`), then the fewest transports reported in its
heartbeat, then the node id (so ties resolve the same way on every instance).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from mediaplane.control.errors import Unavailable
from mediaplane.control.registry_watch import watch_registry
from mediaplane.sfu import SfuClient, SfuError
from mediaplane.sfu.client import Listener
from mediaplane.state import keys
from mediaplane.state.models import SfuNodeRecord
from mediaplane.state.store import StateStore

log = logging.getLogger(__name__)
STATIC_NODE = "static"
NodeDown = Callable[[str], Awaitable[None]]
RpcObserver = Callable[[str, float, str], None]  # method, seconds, outcome


class SfuPool:
    def __init__(self, store: StateStore | None, secret: str, *, poll_s: float = 0.5) -> None:
        self.store = store
        self._secret = secret
        self.poll_s = poll_s
        self.clients: dict[str, SfuClient] = {}
        self.nodes: dict[str, SfuNodeRecord] = {}
        self._listeners: list[Listener] = []
        self._rpc_observers: list[RpcObserver] = []
        self.on_node_down: list[NodeDown] = []
        self._task: asyncio.Task[None] | None = None
        self._static = store is None
        self.ready = asyncio.Event()

    @classmethod
    def static(cls, client: SfuClient) -> SfuPool:
        pool = cls(None, "")
        pool.clients[STATIC_NODE] = client
        pool.nodes[STATIC_NODE] = SfuNodeRecord(node_id=STATIC_NODE, url=client.url)
        pool.ready.set()
        return pool

    @classmethod
    async def discover(
        cls, store: StateStore, secret: str, *, poll_s: float = 0.5, wait_s: float = 10.0
    ) -> SfuPool:
        """A pool fed by the registry; waits up to `wait_s` for a first live node."""
        pool = cls(store, secret, poll_s=poll_s)
        pool._task = asyncio.create_task(
            watch_registry("sfu pool", pool.refresh, pool.poll_s), name="sfu-pool"
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pool.ready.wait(), wait_s)
        if not pool.ready.is_set():
            log.warning("no SFU node registered in redis yet; rooms wait for one")
        return pool

    # lookups ---------------------------------------------------------------
    @property
    def is_static(self) -> bool:
        return self._static

    def alive(self, node_id: str | None) -> bool:
        return node_id is not None and node_id in self.clients

    def client(self, node_id: str | None) -> SfuClient:
        if node_id is None or node_id not in self.clients:
            raise Unavailable(f"SFU node {node_id!r} is not available")
        return self.clients[node_id]

    @property
    def default(self) -> SfuClient:
        """Some live node's client (for calls not tied to a room, like health)."""
        if not self.clients:
            raise Unavailable("no SFU node is up")
        return self.clients[sorted(self.clients)[0]]

    @property
    def connected(self) -> bool:
        return any(c.connected for c in self.clients.values())

    async def least_loaded(self) -> str | None:
        if self._static:
            return STATIC_NODE
        ids = sorted(self.clients)
        if not ids or self.store is None:
            return None
        counts = await self.store.sfu_node_room_counts(ids)

        def load(n: str) -> tuple[int, int, int, str]:
            # Forwarding cost grows with streams (mediasoup's CPU goes per packet in and
            # out), so they rank first, from the last heartbeat; rooms placed (Redis,
            # current at once) break ties, so a burst of new empty rooms still spreads.
            node = self.nodes.get(n)
            streams = node.producers + node.consumers if node else 0
            return (streams, counts.get(n, 0), node.transports if node else 0, n)

        return min(ids, key=load)

    # notifications ------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)
        for client in self.clients.values():
            client.add_listener(listener)

    def add_rpc_observer(self, observe: RpcObserver) -> None:
        """Called after every RPC of every node's client (metrics), new nodes included."""
        self._rpc_observers.append(observe)
        for client in self.clients.values():
            client.rpc_observers.append(observe)

    @property
    def reconnects(self) -> int:
        return sum(c.reconnects for c in self.clients.values())

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)
        for client in self.clients.values():
            client.remove_listener(listener)

    # the registry watcher --------------------------------------------------------
    async def refresh(self) -> None:
        assert self.store is not None
        alive, stale = await self.store.sfu_nodes()
        for node_id in stale:
            if await self.store.mark_sfu_node_down(node_id):
                log.warning("sfu node marked down node=%s (heartbeat expired)", node_id)
                await self.store.publish(
                    keys.control_events(),
                    {"type": "sfuNodeDown", "node": node_id, "at": time.time()},
                )
        for node_id, record in alive.items():
            self.nodes[node_id] = record
            known = self.clients.get(node_id)
            if known is not None and known.url == record.url:
                continue
            if known is not None:  # re-registered elsewhere: same id, new address
                await self._drop(node_id, "registered again at a new address")
            try:
                client = await SfuClient.create(record.url, self._secret, request_timeout=5.0)
            except SfuError as e:
                log.warning("sfu node=%s at %s unreachable: %s", node_id, record.url, e)
                continue
            for listener in self._listeners:
                client.add_listener(listener)
            client.rpc_observers.extend(self._rpc_observers)
            self.clients[node_id] = client
            log.info("sfu node up node=%s url=%s", node_id, record.url)
            self.ready.set()
        for node_id in [n for n in self.clients if n not in alive]:
            await self._drop(node_id, "heartbeat expired")

    async def _drop(self, node_id: str, reason: str) -> None:
        client = self.clients.pop(node_id, None)
        self.nodes.pop(node_id, None)
        if client is None:
            return
        log.warning("sfu node down node=%s: %s", node_id, reason)
        for listener in self._listeners:
            client.remove_listener(listener)
        with contextlib.suppress(Exception):
            await client.close()
        for callback in list(self.on_node_down):
            try:
                await callback(node_id)
            except Exception:
                log.exception("node-down handler failed for node=%s", node_id)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not self._static:
            for client in self.clients.values():
                with contextlib.suppress(Exception):
                    await client.close()
            self.clients.clear()
