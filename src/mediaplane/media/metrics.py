"""The media manager's Prometheus metrics (docs/operations.md has the list).

Counters and histograms move on job transitions (JobManager.on_transition);
gauges (jobs by state, budget, live packet counts) are read at scrape time.
Worker CPU: the CPU time of the workers already reaped (getrusage of the
children) plus that of the live ones (/proc/<pid>/stat), so the counter keeps
what finished jobs used.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterator
from typing import get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mediaplane.media.manager import JobManager
from mediaplane.media.worker.kinds import ELEMENTS_BY_KIND
from mediaplane.wire.media import Job, JobKind, JobState

KINDS: tuple[str, ...] = get_args(JobKind)
STATES: tuple[str, ...] = get_args(JobState)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600)
FIRST_PACKET_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
TICKS = os.sysconf("SC_CLK_TCK")


class MediaMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.transitions = Counter(
            "mediaplane_media_job_transitions_total",
            "Jobs entering a state, by kind and state (state=pending counts jobs admitted)",
            ["kind", "state"],
            registry=r,
        )
        self.duration = Histogram(
            "mediaplane_media_job_duration_seconds",
            "Jobs from admission to their end, by kind and final state",
            ["kind", "state"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.first_packet = Histogram(
            "mediaplane_media_job_time_to_first_packet_seconds",
            "Admission to the first packet / decoded data (the job's `running`), by kind",
            ["kind"],
            buckets=FIRST_PACKET_BUCKETS,
            registry=r,
        )

    def attach(self, manager: JobManager) -> None:
        """Hook into the manager's transitions and register the scrape-time gauges."""
        manager.on_transition.append(self.observe)
        self.registry.register(_Snapshot(manager))

    def observe(self, job: Job) -> None:
        self.transitions.labels(job.kind, job.state).inc()
        if job.state == "running" and job.time_to_first_packet_s is not None:
            self.first_packet.labels(job.kind).observe(max(0.0, job.time_to_first_packet_s))
        if job.terminal and job.ended_at is not None:
            self.duration.labels(job.kind, job.state).observe(job.ended_at - job.created_at)


class _Snapshot(Collector):
    def __init__(self, manager: JobManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Metric]:
        m = self.manager
        jobs = list(m.jobs.values())
        by_state = GaugeMetricFamily(
            "mediaplane_media_jobs",
            "Jobs this manager knows (kept records included), by kind and state",
            labels=["kind", "state"],
        )
        for kind in KINDS:
            for state in STATES:
                n = sum(1 for j in jobs if j.kind == kind and j.state == state)
                by_state.add_metric([kind, state], n)
        yield by_state
        live = [j for j in jobs if not j.terminal]
        budget = GaugeMetricFamily(
            "mediaplane_media_budget_units",
            "Admission budget in cost units: in use by live jobs, and the total",
            labels=["which"],
        )
        budget.add_metric(["used"], sum(j.cost for j in live))
        budget.add_metric(["total"], m.settings.media_cpu_budget)
        yield budget
        yield _by_kind(
            "mediaplane_media_live_packets_received",
            "RTP packets received by the live jobs so far (sum over live jobs)",
            live,
            lambda j: j.stats.packets_received,
        )
        yield _by_kind(
            "mediaplane_media_live_packets_lost",
            "RTP packets the live jobs' jitter buffers counted lost (sum over live jobs)",
            live,
            lambda j: j.stats.packets_lost,
        )
        yield _by_kind(
            "mediaplane_media_live_output_bytes",
            "Bytes written by the live jobs so far",
            live,
            lambda j: j.stats.bytes,
        )
        stalled = GaugeMetricFamily(
            "mediaplane_media_jobs_stalled", "Live jobs whose input has stalled"
        )
        stalled.add_metric([], sum(1 for j in live if j.stats.stalled))
        yield stalled
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = ru.ru_utime + ru.ru_stime + sum(_cpu_seconds(w.pid) for w in m.workers.values())
        workers_cpu = CounterMetricFamily(
            "mediaplane_media_worker_cpu_seconds",
            "CPU time of the GStreamer worker processes (finished and live), user + system",
        )
        workers_cpu.add_metric([], cpu)
        yield workers_cpu
        workers = GaugeMetricFamily("mediaplane_media_workers", "Live worker processes")
        workers.add_metric([], len(m.workers))
        yield workers
        up = GaugeMetricFamily(
            "mediaplane_media_gstreamer_ok",
            "1 when every GStreamer element of the job kind is present",
            labels=["kind"],
        )
        for kind in ELEMENTS_BY_KIND:
            up.add_metric([kind], 0.0 if kind in m.missing else 1.0)
        yield up


def _by_kind(
    name: str, doc: str, jobs: list[Job], value: Callable[[Job], float]
) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=["kind"])
    for kind in KINDS:
        g.add_metric([kind], float(sum(value(j) for j in jobs if j.kind == kind)))
    return g


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a live (or not yet reaped) process; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / TICKS
