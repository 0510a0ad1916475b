"""The control plane's Prometheus metrics (docs/operations.md has the list).

Counters move as things happen (hooks on the webhook emitter, the SFU client
and the room manager); gauges are read at scrape time: this instance's rooms,
peers and tracks from memory, the cluster's rooms and participants from Redis
(read in `refresh()`, which /metrics awaits before rendering).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mediaplane.control.jobs.recordings import RecordingService
from mediaplane.control.media_pool import MediaPool
from mediaplane.control.rooms import RoomManager
from mediaplane.control.webhooks import Webhooks
from mediaplane.observability.metrics import LATENCY_BUCKETS

log = logging.getLogger(__name__)
Json = dict[str, Any]
REDIS_TIMEOUT_S = 2.0


class ControlMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.snapshot: _Snapshot | None = None
        r = self.registry
        ProcessCollector(registry=r)  # the process the control plane runs in
        PlatformCollector(registry=r)
        self.events = Counter(
            "mediaplane_control_events_total",
            "Events this instance emitted (room.*, participant.*, recording.*, egress.*, ...); "
            "counted whether or not webhook URLs are configured",
            ["event"],
            registry=r,
        )
        self.rpc_latency = Histogram(
            "mediaplane_control_sfu_rpc_duration_seconds",
            "SFU RPC round trip seen by the control plane, by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rpc_requests = Counter(
            "mediaplane_control_sfu_rpc_requests_total",
            "SFU RPC requests by method and outcome (ok, an error code, timeout, connection)",
            ["method", "outcome"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "mediaplane_control_webhook_deliveries_total",
            "Webhook delivery attempts by event and outcome (delivered, retry, gave_up)",
            ["event", "outcome"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "mediaplane_control_webhook_delivery_duration_seconds",
            "Time of one webhook POST, by outcome",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def attach(self, rooms: RoomManager, hooks: Webhooks, recordings: RecordingService) -> None:
        """Hook into what moves the counters (once, in the app's lifespan)."""
        self.snapshot = _Snapshot(rooms, recordings)
        self.registry.register(self.snapshot)
        hooks.on_emit.append(lambda event: self.events.labels(event).inc())
        hooks.on_attempt.append(self._attempt)
        rooms.pool.add_rpc_observer(self._rpc)

    def _attempt(self, event: str, outcome: str, seconds: float) -> None:
        self.webhook_deliveries.labels(event, outcome).inc()
        self.webhook_latency.labels(outcome).observe(seconds)

    def _rpc(self, method: str, seconds: float, outcome: str) -> None:
        self.rpc_requests.labels(method, outcome).inc()
        self.rpc_latency.labels(method).observe(seconds)

    async def refresh(self) -> None:
        """Read the cluster-wide numbers from Redis (kept from the last scrape if it fails)."""
        snap = self.snapshot
        if snap is None:
            return
        store = snap.rooms.store
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                names = [r.name for r in await store.list_rooms()]
                counts = await asyncio.gather(*(store.count_peers(n) for n in names))
                snap.sfu_nodes_down = len(await store.sfu_nodes_down())
                snap.media_managers_down = len(await store.media_managers_down())
        except Exception as e:  # Redis down: the gauges say so via mediaplane_control_redis_up
            log.warning(
                "metrics: cluster counts from redis failed instance=%s: %s",
                snap.rooms.instance_id,
                e,
            )
            snap.redis_up = False
            return
        snap.redis_up = True
        snap.cluster_rooms = len(names)
        snap.cluster_participants = sum(counts)


class _Snapshot(Collector):
    """Gauges read from memory at scrape time."""

    def __init__(self, rooms: RoomManager, recordings: RecordingService) -> None:
        self.rooms = rooms
        self.recordings = recordings
        self.redis_up = True
        self.cluster_rooms = 0
        self.cluster_participants = 0
        self.sfu_nodes_down = 0
        self.media_managers_down = 0

    def collect(self) -> Iterator[Metric]:
        rooms = self.rooms
        peers = [p for room in rooms.rooms.values() for p in room.peers.values()]
        inst = rooms.instance_id
        info = GaugeMetricFamily(
            "mediaplane_control_instance_info",
            "This control-plane instance (value 1)",
            labels=["instance"],
        )
        info.add_metric([inst], 1.0)
        yield info
        yield _gauge(
            "mediaplane_control_rooms",
            "Rooms: with peers on this instance, and in the cluster",
            {("instance",): len(rooms.rooms), ("cluster",): self.cluster_rooms},
            label="scope",
        )
        yield _gauge(
            "mediaplane_control_participants",
            "Connected participants: on this instance, and in the cluster (Redis)",
            {("instance",): len(peers), ("cluster",): self.cluster_participants},
            label="scope",
        )
        by_kind: dict[tuple[str, ...], float] = {("audio",): 0, ("video",): 0}
        for p in peers:
            for prod in p.producers.values():
                by_kind[(prod.kind,)] = by_kind.get((prod.kind,), 0) + 1
        yield _gauge(
            "mediaplane_control_producers",
            "Producers of this instance's peers, by kind",
            by_kind,
            label="kind",
        )
        yield _gauge(
            "mediaplane_control_consumers",
            "Consumers of this instance's peers",
            {(): float(sum(len(p.consumers) for p in peers))},
        )
        yield _counter(
            "mediaplane_control_tracks_published",
            "Producers created by this instance",
            rooms.counts,
            "produce.",
        )
        yield _counter(
            "mediaplane_control_tracks_subscribed",
            "Consumers created by this instance",
            rooms.counts,
            "consume.",
        )
        active = len(self.recordings.active)
        yield _gauge(
            "mediaplane_control_recordings_active",
            "Recordings this instance drives (one per participant track set)",
            {(): float(active)},
        )
        yield _gauge(
            "mediaplane_control_sfu_connected",
            "1 while an RPC connection to an SFU node is up",
            {(): 1.0 if rooms.pool.connected else 0.0},
        )
        yield _gauge(
            "mediaplane_control_redis_up",
            "1 if the last scrape's Redis reads worked",
            {(): 1.0 if self.redis_up else 0.0},
        )
        yield from self._registries()
        sfu_reconnects = CounterMetricFamily(
            "mediaplane_control_sfu_reconnects", "Times the SFU RPC connection was re-established"
        )
        sfu_reconnects.add_metric([], rooms.pool.reconnects)
        yield sfu_reconnects

    def _registries(self) -> Iterator[Metric]:
        """SFU nodes and media managers as this instance sees them (their heartbeats)."""
        pool = self.rooms.pool
        yield _gauge(
            "mediaplane_control_sfu_nodes",
            "SFU nodes: up (connected by this instance) and marked down (cluster, Redis)",
            {("up",): len(pool.clients), ("down",): self.sfu_nodes_down},
            label="state",
        )
        load = GaugeMetricFamily(
            "mediaplane_control_sfu_node_objects",
            "Each SFU node's objects from its last heartbeat (the placement's load figures)",
            labels=["node", "object"],
        )
        for node_id, node in sorted(pool.nodes.items() if not pool.is_static else []):
            for what in ("routers", "transports", "producers", "consumers"):
                load.add_metric([node_id, what], float(getattr(node, what)))
        yield load
        media = self.recordings.media
        if isinstance(media, MediaPool):
            yield _gauge(
                "mediaplane_control_media_managers",
                "Media managers: up (heartbeat live) and marked down (cluster, Redis)",
                {("up",): len(media.clients), ("down",): self.media_managers_down},
                label="state",
            )
            units = GaugeMetricFamily(
                "mediaplane_control_media_manager_units",
                "Each media manager's CPU budget and units in use (its last heartbeat)",
                labels=["manager", "what"],
            )
            for manager_id, rec in sorted(media.managers.items()):
                units.add_metric([manager_id, "capacity"], rec.capacity)
                units.add_metric([manager_id, "used"], rec.used)
            yield units
            refused = CounterMetricFamily(
                "mediaplane_control_media_jobs_refused",
                "Jobs no media manager had room for (answered 429)",
            )
            refused.add_metric([], media.refused)
            yield refused


def _gauge(
    name: str, doc: str, values: dict[tuple[str, ...], float], *, label: str | None = None
) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=[label] if label else [])
    for key, value in values.items():
        g.add_metric(list(key), float(value))
    return g


def _counter(name: str, doc: str, counts: dict[str, int], prefix: str) -> CounterMetricFamily:
    c = CounterMetricFamily(name, doc, labels=["kind"])
    for kind in ("audio", "video"):
        c.add_metric([kind], counts.get(prefix + kind, 0))
    return c
