"""`mediaplane loadtest` (plain RTP) against `mediaplane up` on this machine:
(a) the largest audio room, 1 publisher and N subscribers, and (b) the largest
number of 3-person calls (each person publishes audio and receives the other two),
with loss under 1 % (a packet missing or later than 200 ms is lost), and SFU CPU
per forwarded packet, as a multiple of the floor measured in the same run (one
bare sendto(2) of the same packet size to loopback, benchmarks/floor.py). The load
generator runs on the same 2 cores, so its own CPU and the kernel's UDP
receive-buffer drops are reported next to the SFU's.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import MIN_TAIL_SAMPLES, RESULTS, rewrite_text, start_run, write_result
from benchmarks.floor import SendtoFloor
from mediaplane.loadtest.models import LoadReport, LoadSpec, Percentiles
from mediaplane.loadtest.run import run_loadtest
from mediaplane.settings import Settings
from mediaplane.state.redis_server import free_tcp_port


def _steps(name: str, default: str) -> list[int]:
    return [int(x) for x in os.environ.get(name, default).split(",")]


AUDIO_STEPS = _steps("BENCH_AUDIO_STEPS", "100,250,500,1000,1250,1500,1750,2000,2500,3000,4000")
CALL_STEPS = _steps("BENCH_CALL_STEPS", "10,25,50,100,150,200,250,300,400,500,600,800,1000")
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
MAX_LOSS = 1.0
ANCHOR_MEDIASOUP = 500  # "over ~500 consumers in total" per worker, see MEDIASOUP_URL
MEDIASOUP_URL = "https://mediasoup.org/documentation/v3/scalability/"
LIVEKIT_URL = "https://docs.livekit.io/transport/self-hosting/benchmark/"


class Running:
    """`mediaplane up` as a subprocess on free ports, stopped with SIGINT."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="mp-loadtest-")
        self.env = {
            **os.environ,
            "MEDIAPLANE_ENV": "test",
            "MEDIAPLANE_DATA_DIR": str(Path(self.tmp.name) / "data"),
            "MEDIAPLANE_PORT": str(free_tcp_port()),
            "MEDIAPLANE_SFU_PORT": str(free_tcp_port()),
            "MEDIAPLANE_MEDIA_PORT": str(free_tcp_port()),
        }
        self.env.pop("MEDIAPLANE_REDIS_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mediaplane.cli", "up"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{self.env['MEDIAPLANE_PORT']}/readyz"
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mediaplane up exited with {self.proc.returncode}")
            try:
                if httpx.get(url).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mediaplane up did not become ready in 90 s")
            time.sleep(0.3)
        self.settings = Settings(
            env="test", sfu_port=int(self.env["MEDIAPLANE_SFU_PORT"]),
            port=int(self.env["MEDIAPLANE_PORT"]),
        )  # fmt: skip

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.tmp.cleanup()


def _tail(p: Percentiles) -> tuple[float, str]:
    """p99 from 100 samples or more, else the max of n (a p99 of 30 samples is their max)."""
    return (p.p99, "p99") if p.n >= MIN_TAIL_SAMPLES else (p.max, f"max of {p.n}")


def row(label: int, r: LoadReport) -> dict[str, Any]:
    core = (r.cpu.sfu_workers_pct or 0.0) / 100
    join_tail, join_tail_of = _tail(r.join_ms)
    jitter_tail, jitter_tail_of = _tail(r.jitter_ms)
    return {
        "step": label,
        "streams": r.streams,
        "joined": r.joined,
        "join_failures": r.join_failures,
        "join_p50_ms": r.join_ms.p50,
        "join_p99_ms": r.join_ms.p99,
        "join_n": r.join_ms.n,
        "join_tail_ms": join_tail,
        "join_tail_of": join_tail_of,
        "loss_pct": r.loss_pct,
        "late": r.packets_late,
        "jitter_p50_ms": r.jitter_ms.p50,
        "jitter_p99_ms": r.jitter_ms.p99,
        "jitter_n": r.jitter_ms.n,
        "jitter_tail_ms": jitter_tail,
        "jitter_tail_of": jitter_tail_of,
        "forwarded_pps": r.forwarded_pps,
        "sfu_workers_pct": r.cpu.sfu_workers_pct,
        "us_per_packet": r.cpu_us_per_forwarded_packet,
        "packet_bytes_out": r.packet_bytes_out,
        "window_s": r.wall_s,
        "pps_per_worker_core": r.forwarded_pps / core if core else None,
        "consumers_per_worker_core": r.streams / core if core else None,
        "loadtest_pct": 100 * r.cpu.loadtest_cpu_s / r.wall_s,
        "load_avg_1min": os.getloadavg()[0],
        "machine_pct": r.cpu.machine_busy_pct,
        "rcvbuf_drops": r.udp_receive_buffer_errors,
        "passed": r.passed(MAX_LOSS),
    }


async def series(
    settings: Settings, kind: str, steps: list[int], floor: SendtoFloor
) -> list[dict[str, Any]]:
    out = []
    for n in steps:
        if kind == "audio":
            spec = LoadSpec(rooms=1, publishers=1, subscribers=n, duration_s=SECONDS,
                            join_concurrency=50, room_prefix=f"bench-audio-{n}")  # fmt: skip
        else:
            spec = LoadSpec(rooms=n, publishers=3, subscribers=0, publishers_subscribe=True,
                            duration_s=SECONDS, join_concurrency=50,
                            room_prefix=f"bench-call-{n}")  # fmt: skip
        report = await run_loadtest(spec, settings)
        r = row(n, report)
        # the floor right after the step, as loaded as the step was (a shared machine)
        f = await asyncio.to_thread(floor.measure, report.packet_bytes_out or 132)
        r["floor"], r["floor_us"] = f, f["us_per_sendto"]
        out.append(r)
        print(
            f"{kind} {n}: loss {r['loss_pct']:.3f}% join p50 {r['join_p50_ms']:.0f} ms "
            f"workers {r['sfu_workers_pct'] or 0:.0f}% {r['us_per_packet'] or 0:.1f} us/pkt "
            f"({_floor_x(r)} floor) "
            f"loadtest {r['loadtest_pct']:.0f}% machine {r['machine_pct']:.0f}% "
            f"drops {r['rcvbuf_drops']}",
            file=sys.stderr,
        )
        if not r["passed"]:
            break
        await asyncio.sleep(1.0)
    return out


def _tail_md(r: dict[str, Any], key: str, fmt: str) -> str:
    value = format(r[f"{key}_tail_ms"], fmt)
    return value if r[f"{key}_tail_of"] == "p99" else f"{value} ({r[f'{key}_tail_of']})"


def _floor_x(r: dict[str, Any]) -> str:
    us, floor_us = r["us_per_packet"], r.get("floor_us")
    return f"x{us / floor_us:.2f}" if us and floor_us else "-"


def table(rows: list[dict[str, Any]], label: str) -> str:
    head = (
        f"| {label} | streams out | join p50 / p99 (ms) | loss % (late) | jitter p50 / p99 (ms) "
        "| packets out/s | SFU workers CPU % | SFU µs per packet out | floor µs | x sendto floor "
        "| loadtest CPU % | machine busy % | load avg | UDP rcvbuf drops |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |\n"
    )
    lines = [
        f"| {r['step']} | {r['streams']} | {r['join_p50_ms']:.0f} / {_tail_md(r, 'join', '.0f')} "
        f"| {r['loss_pct']:.3f} ({r['late']}) | {r['jitter_p50_ms']:.2f} / "
        f"{_tail_md(r, 'jitter', '.2f')} | {r['forwarded_pps']:.0f} "
        f"| {r['sfu_workers_pct'] or 0:.0f} | {r['us_per_packet'] or 0:.2f} "
        f"| {r.get('floor_us', 0):.2f} | {_floor_x(r)} | {r['loadtest_pct']:.0f} "
        f"| {r['machine_pct']:.0f} "
        f"| {r.get('load_avg_1min', float('nan')):.2f} | {r['rcvbuf_drops']} |"
        for r in rows
    ]
    return head + "\n".join(lines)


def best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    ok = [r for r in rows if r["passed"]]
    return ok[-1] if ok else None


def summary(kind: str, rows: list[dict[str, Any]], unit: str) -> str:
    b = best(rows)
    if b is None:
        return f"No {kind} step kept loss under {MAX_LOSS:.0f} %."
    stop = rows[-1]
    why = (
        f"the next step ({stop['step']}) lost {stop['loss_pct']:.2f} % "
        f"({stop['late']} packets late, {stop['join_failures']} failed joins) while the SFU "
        f"workers used {stop['sfu_workers_pct'] or 0:.0f} % of a core in all, the load test "
        f"{stop['loadtest_pct']:.0f} % and the whole machine was {stop['machine_pct']:.0f} % busy"
        if not stop["passed"]
        else "the series ended without loss (raise its steps)"
    )
    cons_core = b["consumers_per_worker_core"] or 0
    return (
        f"Largest clean {kind} on this machine (loss under {MAX_LOSS:.0f} %): "
        f"**{b['step']} {unit}** ({b['streams']} streams out, {b['forwarded_pps']:.0f} "
        f"packets/s); {why}. At that step the SFU spent **{b['us_per_packet'] or 0:.2f} µs of "
        f"worker CPU per forwarded packet, {_floor_x(b)} the bare sendto floor** "
        f"({b['floor_us']:.2f} µs at that step), and served {cons_core:,.0f} audio consumers "
        "per worker core "
        f'(mediasoup says a worker "can typically handle over ~{ANCHOR_MEDIASOUP} consumers in '
        f'total", {MEDIASOUP_URL}; that is for audio and video over WebRTC, so not like for '
        "like with our 50 pps plain-RTP audio)."
    )


def verdict(rows: list[dict[str, Any]], worker_cores: int) -> str:
    """What the failing step's figures say set the limit (nothing when none failed)."""
    stop = rows[-1] if rows else None
    if stop is None or stop["passed"]:
        return ""
    sfu, machine = stop["sfu_workers_pct"] or 0.0, stop["machine_pct"]
    usable = 100 * worker_cores
    if sfu >= 0.8 * usable:
        return (
            f"At the failing step the SFU workers used {sfu:.0f} % of the {usable} % their "
            f"{worker_cores} core(s) give: the SFU's own limit."
        )
    if machine >= 90:
        return (
            f"At the failing step the machine was {machine:.0f} % busy while the SFU workers "
            f"used {sfu:.0f} % of the {usable} % they could: the load generator and the other "
            "processes on the same cores set this limit, not the SFU alone."
        )
    return (
        f"At the failing step neither the SFU workers ({sfu:.0f} % of {usable} %) nor the "
        f"machine ({machine:.0f} %) were saturated; packets arrived late (jitter p50 "
        f"{stop['jitter_p50_ms']:.1f} ms), which points at the generator's timing."
    )


async def main_async(settings: Settings) -> dict[str, Any]:
    floor = SendtoFloor()
    try:
        audio = await series(settings, "audio", AUDIO_STEPS, floor)
        calls = await series(settings, "calls", CALL_STEPS, floor)
    finally:
        floor.close()
    return {"audio_room": audio, "calls": calls}


def headline(data: dict[str, Any]) -> str:
    parts = []
    for key, unit in (("audio_room", "subscribers in one room"), ("calls", "3-person calls")):
        b = best(data[key])
        if b is not None:
            parts.append(f"{b['step']} {unit} ({_floor_x(b)} the sendto floor)")
    return "largest clean: " + ", ".join(parts) if parts else "no clean step"


def render(data: dict[str, Any]) -> str:
    audio, calls = data["audio_room"], data["calls"]
    sizes = sorted({r["floor"]["packet_bytes"] for r in audio + calls if "floor" in r})
    return (
        "Plain-RTP Opus-sized packets (50 pps per publisher) through `mediaplane up`'s SFU "
        "(2 workers, one router per room), generated and received by "
        f"`mediaplane loadtest` on the same machine, {SECONDS:.0f} s measured per step after "
        "every join; a packet missing or later than 200 ms counts as lost. Packets and CPU are "
        f"counted over the same window (the sender's ticks of the measured {SECONDS:.0f} s). Each "
        "series "
        "stops at the first step with loss of 1 % or more.\n\n"
        "Floor, measured in the same run right after each step: the CPU of one bare "
        f"`sendto(2)` of a UDP packet of the forwarded packets' size ({', '.join(map(str, sizes))} "
        "bytes) to loopback, median of 3 runs of 50,000 (`benchmarks/floor.py`); "
        '"x sendto floor" is the SFU\'s worker CPU per forwarded packet over it.\n\n'
        "**(a) One audio room: 1 publisher, N subscribers** (one router, so one worker core)\n\n"
        f"{table(audio, 'subscribers N')}\n\n"
        f"{summary('audio room', audio, 'subscribers')} {verdict(audio, 1)}\n\n"
        "**(b) 3-person calls: K rooms, each person publishes and receives the other two** "
        "(rooms spread over both workers)\n\n"
        f"{table(calls, 'rooms K')}\n\n"
        f"{summary('number of 3-person calls', calls, 'rooms')} {verdict(calls, 2)}\n\n"
        "The load generator is Python (one sender thread, one receiver thread) on the same "
        "2 cores as the SFU, and other sessions' tests ran on those cores too (load average "
        "column, sampled at the end of each step); the one-worker fan-out benchmark (SFU "
        "forwarding fan-out below) measures the SFU alone. A p99 from fewer than 100 samples "
        "(joins or streams) is shown as the max of n. The UDP receive-buffer column is the "
        "host-wide kernel counter, so it includes other processes' sockets. Not like for like "
        "with published figures of WebRTC SFUs: this is plain RTP, with no SRTP encryption, "
        "ICE or congestion control per packet. LiveKit's published room sizes "
        f"({LIVEKIT_URL}) are for WebRTC (SRTP) on a 16-core machine; no per-core packet "
        "figure is derived from them here."
    )


def main() -> None:
    if "--render" in sys.argv:  # the text again from the stored run: nothing measured
        data = json.loads((RESULTS / "loadtest.json").read_text())["data"]
        rewrite_text("loadtest", render(data), headline(data))
        print(render(data))
        return
    run = start_run()
    system = Running()
    try:
        data = asyncio.run(main_async(system.settings))
    finally:
        system.stop()
    md = render(data)
    write_result(
        "loadtest",
        "Load test: largest audio room and most 3-person calls (plain RTP)",
        data,
        md,
        run,
        headline(data),
    )
    print(md)


if __name__ == "__main__":
    main()
