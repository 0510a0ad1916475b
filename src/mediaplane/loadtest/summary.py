"""Per-stream counts to a LoadReport."""

from __future__ import annotations

from mediaplane.loadtest.models import CpuUse, LoadReport, LoadSpec, Percentiles


def summarize(
    spec: LoadSpec,
    *,
    expected: list[int],
    received: list[int],
    late: list[int],
    jitter_s: list[float],
    join_s: list[float],
    publish_s: list[float],
    errors: list[str],
    cpu: tuple[float | None, float | None, float, float, int | None],
    wall_s: float,
    packet_bytes_out: int | None = None,
) -> LoadReport:
    workers_s, workers_pct, self_s, machine_pct, rcvbuf = cpu
    total = sum(expected)
    got, late_n = sum(received), sum(late)
    on_time = got - late_n
    loss = 100.0 * (1 - on_time / total) if total else 0.0
    return LoadReport(
        spec=spec,
        joined=len(join_s),
        join_failures=len(errors),
        join_errors=errors[:10],
        join_ms=Percentiles.of([x * 1000 for x in join_s]),
        publish_ms=Percentiles.of([x * 1000 for x in publish_s]),
        streams=len(received),
        packets_expected=total,
        packets_received=got,
        packets_late=late_n,
        loss_pct=loss,
        jitter_ms=Percentiles.of([x * 1000 for x in jitter_s]),
        udp_receive_buffer_errors=rcvbuf,
        cpu=CpuUse(
            sfu_workers_cpu_s=workers_s,
            sfu_workers_pct=workers_pct,
            loadtest_cpu_s=self_s,
            machine_busy_pct=machine_pct,
        ),
        forwarded_pps=got / wall_s if wall_s else 0.0,
        cpu_us_per_forwarded_packet=workers_s / got * 1e6
        if workers_s is not None and got
        else None,
        wall_s=wall_s,
        packet_bytes_out=packet_bytes_out,
    )
