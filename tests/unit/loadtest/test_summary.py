"""Per-stream counts to a LoadReport: loss, rates and CPU per packet over one window."""

from __future__ import annotations

from typing import Any

import pytest

from mediaplane.loadtest.models import LoadReport, LoadSpec, Percentiles
from mediaplane.loadtest.summary import summarize


def report(**overrides: Any) -> LoadReport:
    args: dict[str, Any] = dict(
        expected=[400, 400],
        received=[400, 396],
        late=[0, 4],
        jitter_s=[0.001, 0.002],
        join_s=[0.05, 0.07],
        publish_s=[0.01],
        errors=[],
        cpu=(0.08, 1.0, 0.5, 30.0, 0),
        wall_s=8.0,
        packet_bytes_out=148,
    )
    args.update(overrides)
    return summarize(LoadSpec(subscribers=2, duration_s=8.0), **args)


def test_missing_and_late_packets_are_both_lost() -> None:
    r = report()
    assert r.packets_expected == 800 and r.packets_received == 796 and r.packets_late == 4
    assert r.loss_pct == pytest.approx(100 * 8 / 800)  # 4 missing + 4 late
    assert r.passed(1.01) and not r.passed(1.0)


def test_rate_and_cpu_per_packet_use_the_packets_of_the_window() -> None:
    r = report()
    assert r.forwarded_pps == pytest.approx(796 / 8.0)
    assert r.cpu_us_per_forwarded_packet == pytest.approx(0.08 / 796 * 1e6)
    assert r.packet_bytes_out == 148


def test_no_cpu_figure_without_local_workers_or_packets() -> None:
    assert report(cpu=(None, None, 0.5, 30.0, None)).cpu_us_per_forwarded_packet is None
    assert report(received=[0, 0], late=[0, 0]).cpu_us_per_forwarded_packet is None


def test_percentiles_say_how_many_samples_they_come_from() -> None:
    p = Percentiles.of([float(x) for x in range(1, 31)])
    assert (p.n, p.p50, p.max) == (30, 16.0, 30.0)
    assert p.p99 == p.max  # from 30 samples a "p99" is just the largest one
    assert Percentiles.of([]).n == 0
