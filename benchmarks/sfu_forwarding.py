"""Forwarding on one mediasoup worker: one plain-RTP Opus producer fanned out to
N plain consumers. Finds the largest N in the series that stays clean (loss under
0.1 % and real time: every packet out within 0.5 s of the end of sending), and the
worker's CPU per forwarded packet at each N, as a multiple of the floor measured in
the same run: one bare sendto(2) of the same packet size to loopback
(benchmarks/floor.py).

Sender: a Python socket sending 20 ms Opus-sized RTP packets (50 pps, the rate
of one audio track). Receiver: one UDP socket (32 MiB buffer) that every
consumer sends to, counting packets per consumer SSRC. Worker CPU comes from
/proc/<pid>/stat. The first step (N=100) is the reference the others are compared with.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
import threading
import time
from collections import Counter
from typing import Any

from benchmarks.common import start_run, write_result
from benchmarks.floor import SendtoFloor
from mediaplane.settings import Settings
from mediaplane.sfu import SfuClient, SfuProcess

STEPS = [
    int(x)
    for x in os.environ.get("BENCH_STEPS", "100,400,800,1200,1600,2000,2400,3200,4800").split(",")
]
DRAIN_MAX_S = 0.5  # real time: all packets out within this of the end of sending
STALL_S = 2.0  # no packet for this long: the rest are lost
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
PPS = 50
PT, SSRC = 100, 0x1234ABCD
OPUS = {
    "codecs": [{"mimeType": "audio/opus", "payloadType": PT, "clockRate": 48000, "channels": 2}],
    "encodings": [{"ssrc": SSRC}],
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Receiver:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # beyond rmem_max when we may (root), as the loadtest's receiver does
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 32 * 2**20)  # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 2**20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.counts: Counter[int] = Counter()
        self.packet_bytes = 0  # the largest forwarded packet seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray(2048)
        view = memoryview(buf)
        while not self._stop.is_set():
            try:
                n = self.sock.recv_into(buf)
            except TimeoutError:
                continue
            if n >= 12:
                self.packet_bytes = max(self.packet_bytes, n)
                self.counts[struct.unpack_from("!I", view, 8)[0]] += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


async def send_rtp(port: int, seconds: float) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = os.urandom(120)
    start = time.monotonic()
    total = int(seconds * PPS)
    for i in range(total):
        header = struct.pack("!BBHII", 0x80, PT, i & 0xFFFF, (i * 960) & 0xFFFFFFFF, SSRC)
        sock.sendto(header + payload, ("127.0.0.1", port))
        delay = start + (i + 1) / PPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    sock.close()
    return total


async def step(
    client: SfuClient, worker_pid: int, n: int, rx: Receiver, floor: SendtoFloor
) -> dict[str, Any]:
    router = await client.create_router(f"bench-fwd-{n}")
    try:
        ptr = await client.create_plain_transport(router.router_id, comedia=True)
        producer = await client.produce(ptr.transport_id, "audio", OPUS)
        ssrcs = []
        for _ in range(n):
            t = await client.create_plain_transport(router.router_id)
            await client.connect_plain_transport(t.transport_id, ip="127.0.0.1", port=rx.port)
            c = await client.consume(
                t.transport_id, producer.producer_id, router.rtp_capabilities, paused=False
            )
            ssrcs.append(int(c.rtp_parameters["encodings"][0]["ssrc"]))
        rx.counts.clear()
        load0 = os.getloadavg()[0]
        cpu0, t0 = cpu_seconds(worker_pid), time.monotonic()
        sent = await send_rtp(ptr.tuple.local_port, SECONDS)
        sent_at = time.monotonic()
        # Drain: until every packet is out, or none came for STALL_S (a loaded shared
        # machine can deschedule the worker for tens of ms: a short stall is not the end);
        # the worker's CPU is read then, so it covers the packets counted
        expected = sent * n
        last, done_at = sum(rx.counts[s] for s in ssrcs), sent_at
        while last < expected and time.monotonic() - done_at < STALL_S:
            await asyncio.sleep(0.05)
            total = sum(rx.counts[s] for s in ssrcs)
            if total > last:
                last, done_at = total, time.monotonic()
        cpu = cpu_seconds(worker_pid) - cpu0
        wall = time.monotonic() - t0
        received = sum(rx.counts[s] for s in ssrcs)
        drain = max(0.0, done_at - sent_at)
        # the floor right after the step, as loaded as the step was (a shared machine)
        f = await asyncio.to_thread(floor.measure, rx.packet_bytes or 132)
        us = cpu / received * 1e6 if received else float("inf")
        return {
            "n": n,
            "packets_in": sent,
            "packets_out_expected": expected,
            "packets_out_received": received,
            "loss_pct": 100.0 * (1 - received / expected),
            "worker_cpu_s": cpu,
            "wall_s": wall,
            "pps_out_per_cpu_s": received / cpu if cpu > 0 else float("inf"),
            "us_per_packet_out": us,
            "floor": f,
            "floor_us": f["us_per_sendto"],
            "x_floor": us / f["us_per_sendto"],
            "worker_cpu_pct": 100.0 * cpu / wall,
            "drain_s": drain,
            "clean": received >= expected * 0.999 and drain <= DRAIN_MAX_S,
            "load_avg_start": load0,
            "load_avg_end": os.getloadavg()[0],
        }
    finally:
        await client.close_router(router.router_id)


async def run() -> tuple[list[dict[str, Any]], int]:
    sfu = await SfuProcess.start(Settings(env="test"), port=0, num_workers=1)
    client = await SfuClient.create(sfu.url, sfu.secret, request_timeout=30)
    rx = Receiver()
    floor = SendtoFloor()
    results = []
    try:
        pid = sfu.worker_pids[0]
        for n in STEPS:
            r = await step(client, pid, n, rx, floor)
            results.append(r)
            print(
                f"N={n}: loss {r['loss_pct']:.3f}% cpu {r['worker_cpu_pct']:.1f}% "
                f"{r['us_per_packet_out']:.2f} us/pkt drain {r['drain_s']:.2f} s",
                file=sys.stderr,
            )
            if not r["clean"]:
                break
    finally:
        floor.close()
        rx.close()
        await client.close()
        await sfu.stop()
    return results, rx.packet_bytes


def main() -> None:
    stamp = start_run()
    results, packet_bytes = asyncio.run(run())
    ok = [r for r in results if r["clean"]]
    best = ok[-1] if ok else None
    first_stop = next((r for r in results if not r["clean"]), None)
    rows = "\n".join(
        f"| {r['n']:.0f} | {r['packets_out_received']:.0f} / {r['packets_out_expected']:.0f} "
        f"| {r['loss_pct']:.3f} | {r['worker_cpu_pct']:.1f} | {r['drain_s']:.2f} "
        f"| {r['us_per_packet_out']:.2f} | {r['floor_us']:.2f} | x{r['x_floor']:.2f} "
        f"| {r['load_avg_start']:.2f} / {r['load_avg_end']:.2f} | {'yes' if r['clean'] else 'no'} |"
        for r in results
    )
    ratio = best["x_floor"] if best else 0.0
    floors = [r["floor_us"] for r in results]
    stop_text = (
        f"the next step ({first_stop['n']:.0f}) was not: {first_stop['loss_pct']:.2f} % lost, "
        f"the last packet out {first_stop['drain_s']:.2f} s after the end of sending, the worker "
        f"at {first_stop['worker_cpu_pct']:.0f} % of its core"
        if first_stop
        else "the series ended clean (raise its steps)"
    )
    table = (
        f"Floor, measured in the same run right after each step: one bare `sendto(2)` of a "
        f"{packet_bytes}-byte UDP packet (the forwarded packets' size) to loopback, median of 3 "
        f"runs of 50,000: {min(floors):.2f} to {max(floors):.2f} µs of CPU over the steps "
        "(`benchmarks/floor.py`).\n\n"
        "| consumers N | packets out (received / expected) | loss % | worker CPU % "
        "| last packet after end of sending (s) | worker µs per packet out | floor µs "
        "| x sendto floor "
        "| load avg start / end | clean |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
        f"{rows}\n\n"
        f"Largest clean N on this machine: **{best['n'] if best else 0:.0f} consumers** "
        f"({PPS} pps in, {SECONDS:.0f} s per step; clean = loss under 0.1 % and every packet out "
        f"within {DRAIN_MAX_S} s of the end of sending); {stop_text}. At the largest clean N the "
        f"worker spent **{best['us_per_packet_out'] if best else 0:.2f} µs per forwarded packet, "
        f"x{ratio:.2f} the bare sendto floor**. Past saturation mediasoup does not drop on "
        "loopback: packets queue and go out late (the drain column), which a real-time "
        "receiver counts as lost. Plain RTP: no SRTP encryption, so not like for like with a "
        "WebRTC SFU's per-packet cost."
    )
    write_result(
        "sfu_forwarding",
        "SFU forwarding fan-out (one worker)",
        {
            "steps": results,
            "max_clean_n": best["n"] if best else 0,
            "packet_bytes_out": packet_bytes,
        },
        table,
        stamp,
        f"largest clean fan-out {best['n'] if best else 0:.0f} consumers, "
        f"x{ratio:.2f} the sendto floor per packet",
    )
    print(table)


if __name__ == "__main__":
    main()
