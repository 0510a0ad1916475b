"""A LoadReport as a Rich table."""

from __future__ import annotations

from rich.table import Table

from mediaplane.loadtest.models import LoadReport, Percentiles


def _ms(p: Percentiles) -> str:
    if p.n == 0:
        return "-"
    return f"p50 {p.p50:.1f}  p95 {p.p95:.1f}  p99 {p.p99:.1f}  max {p.max:.1f}  (n={p.n})"


def table(r: LoadReport) -> Table:
    s = r.spec
    who = f"{s.publishers} pub + {s.subscribers} sub" + (
        " (publishers also subscribe)" if s.publishers_subscribe else ""
    )
    t = Table(title=f"loadtest ({s.transport}): {s.rooms} room(s) x {who}, {s.duration_s:.0f} s")
    t.add_column("measure")
    t.add_column("value")
    t.add_row("joined / failed", f"{r.joined} / {r.join_failures}")
    for err in r.join_errors[:3]:
        t.add_row("  join error", err[:100])
    t.add_row("join to first packet (ms)", _ms(r.join_ms))
    t.add_row("publish (ms)", _ms(r.publish_ms))
    t.add_row("streams measured", str(r.streams))
    late = (
        f"{r.packets_late} later than {s.late_after_ms:.0f} ms"
        if s.transport == "rtp"
        else "aiortc's count; lateness not measured"
    )
    t.add_row(
        "packets received / expected", f"{r.packets_received} / {r.packets_expected} ({late})"
    )
    colour = "green" if r.loss_pct < 1.0 else "red"
    t.add_row("packet loss (missing + late)", f"[{colour}]{r.loss_pct:.3f} %[/{colour}]")
    t.add_row("jitter per stream (ms)", _ms(r.jitter_ms))
    t.add_row("forwarded packets/s", f"{r.forwarded_pps:.0f}")
    c = r.cpu
    if c.sfu_workers_cpu_s is not None:
        t.add_row(
            "SFU workers CPU", f"{c.sfu_workers_cpu_s:.2f} s ({c.sfu_workers_pct:.0f} % of a core)"
        )
    else:
        t.add_row("SFU workers CPU", "n/a (workers not on this host)")
    if r.cpu_us_per_forwarded_packet is not None:
        t.add_row("SFU CPU per forwarded packet", f"{r.cpu_us_per_forwarded_packet:.2f} µs")
    t.add_row("loadtest CPU", f"{c.loadtest_cpu_s:.2f} s")
    t.add_row("machine busy", f"{c.machine_busy_pct:.0f} % of all cores")
    if r.udp_receive_buffer_errors is not None:
        t.add_row("UDP receive-buffer drops (host)", str(r.udp_receive_buffer_errors))
    return t
