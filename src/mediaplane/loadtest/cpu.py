"""CPU time of processes and of the machine, from /proc (Linux)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of `pid`, None when it is not on this host."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all cores."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(x) for x in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


def udp_rcvbuf_errors() -> int | None:
    """The kernel's count of UDP datagrams dropped at a full receive buffer."""
    try:
        lines = Path("/proc/net/snmp").read_text().splitlines()
    except OSError:
        return None
    udp = [line.split() for line in lines if line.startswith("Udp:")]
    if len(udp) < 2:
        return None
    names, values = udp[0], udp[1]
    return int(values[names.index("RcvbufErrors")]) if "RcvbufErrors" in names else None


class CpuMeter:
    """CPU between start() and stop() for SFU worker pids, this process, the machine."""

    def __init__(self, worker_pids: list[int]) -> None:
        self.worker_pids = worker_pids
        self._workers0: float | None = None
        self._self0 = 0.0
        self._machine0 = (0, 0)
        self._rcvbuf0: int | None = None

    def _workers(self) -> float | None:
        values = [process_cpu_s(pid) for pid in self.worker_pids]
        if not values or any(v is None for v in values):
            return None
        return sum(v for v in values if v is not None)

    def start(self) -> None:
        self._workers0 = self._workers()
        self._self0 = self_cpu_s()
        self._machine0 = machine_ticks()
        self._rcvbuf0 = udp_rcvbuf_errors()

    def stop(self, wall_s: float) -> tuple[float | None, float | None, float, float, int | None]:
        """(workers CPU-s, workers % of a core, our CPU-s, machine busy %, rcvbuf drops)."""
        workers = self._workers()
        w = workers - self._workers0 if workers is not None and self._workers0 is not None else None
        busy, total = machine_ticks()
        d_busy, d_total = busy - self._machine0[0], total - self._machine0[1]
        rcv = udp_rcvbuf_errors()
        drops = rcv - self._rcvbuf0 if rcv is not None and self._rcvbuf0 is not None else None
        return (
            w,
            100.0 * w / wall_s if w is not None and wall_s > 0 else None,
            self_cpu_s() - self._self0,
            100.0 * d_busy / d_total if d_total else 0.0,
            drops,
        )
