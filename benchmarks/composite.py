"""Room composite cost: CPU-seconds per minute of a 3-person 720p30 composite.

System A is our composite job (media manager -> `mediaplane.media.worker`:
rtpbin, vp8dec, audiomixer + compositor grid with names and the speaker's
frame, x264enc + opusenc into Matroska). System B is ffmpeg doing the same
composite (amix + xstack at the same tile rectangles, drawtext names, a
drawbox frame, libx264/libopus with x264enc's/opusenc's settings, Matroska)
from an SDP of the same RTP streams. Both get the same three pre-encoded
participants (VP8 640x360 30 fps + Opus tone) replayed as RTP in real time;
runs alternate A, B, B' (B' = B with VP8 decoded by libvpx, the library our
vp8dec uses, to separate the decoder from the rest) and medians are compared. CPU is
utime + stime of the one process doing the work (all its threads) from
/proc, over a steady window after a warm-up. Every output is decoded and
checked (1280x720, ~30 fps, the three tones, the three tiles), and the x264
settings both wrote into their streams are compared.

    .venv/bin/python -m benchmarks.composite [--seconds 30] [--rounds 2]

LiveKit's Room Composite egress (headless Chrome rendering the room page,
GStreamer encoding) reserves 4 CPUs per job (`roomCompositeCpuCost = 4` in
livekit/egress pkg/config/service.go), i.e. 240 CPU-s per minute: a budget,
not a measurement on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.gst import GstProcess
from tests.support.media import OPUS, VP8, MediaService, wait_job

from benchmarks.common import start_run, write_result
from benchmarks.composite_media import (
    FPS,
    HEIGHT,
    PEOPLE,
    VIDEO_KBPS,
    WIDTH,
    check_output,
    encode_argv,
    ffmpeg_argv,
    option_diff,
    replay_argv,
    sdp,
)

CLK = os.sysconf("SC_CLK_TCK")
LIVEKIT_CPUS = 4.0  # livekit/egress pkg/config/service.go: roomCompositeCpuCost
START_MARGIN_S = 15.0  # inputs last this much longer than warm-up + window


def cpu_s(pid: int) -> float:
    """utime + stime of a process: the sum over all its threads, in clock ticks."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK


def free_port_pair() -> int:
    """An even UDP port p with p + 1 free too (ffmpeg's RTP demuxer binds both)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port % 2 or port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no free UDP port pair")


def inputs() -> list[dict[str, Any]]:
    specs = []
    for p in PEOPLE:  # audio and video of each, in join order (the grid's order)
        specs.append({"id": f"{p.name}-a", "participant": p.name, "name": p.name.title(),
                      "stream": OPUS})  # fmt: skip
        specs.append({"id": f"{p.name}-v", "participant": p.name, "name": p.name.title(),
                      "stream": VP8})  # fmt: skip
    return specs


async def encode_inputs(folder: Path, seconds: float) -> list[Path]:
    files = [folder / f"{p.name}.mkv" for p in PEOPLE]
    procs = [
        await GstProcess.start(*encode_argv(p, seconds, f))
        for p, f in zip(PEOPLE, files, strict=True)
    ]
    for proc in procs:
        await proc.wait(300)
    return files


async def window(pid: int, warmup: float, seconds: float) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `pid` over `seconds`, after `warmup`."""
    await asyncio.sleep(warmup)
    c0, t0 = cpu_s(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return cpu_s(pid) - c0, time.monotonic() - t0


async def run_ours(
    media: MediaService, files: list[Path], warmup: float, seconds: float, n: int
) -> dict[str, Any]:
    body = {
        "kind": "composite", "filePath": f"bench/composite-{n}", "format": "mkv",
        "width": WIDTH, "height": HEIGHT, "fps": FPS, "videoKbps": VIDEO_KBPS,
        "inputs": inputs(),
    }  # fmt: skip
    async with media.client() as http:
        r = await http.post("/jobs", json=body)
        if r.status_code != 202:
            raise RuntimeError(f"composite did not start: {r.status_code} {r.text}")
        job = r.json()
        ports = [
            (job["rtp"][f"{p.name}-a"]["port"], job["rtp"][f"{p.name}-v"]["port"]) for p in PEOPLE
        ]
        replay = await GstProcess.start(*replay_argv(files, ports))
        try:
            await wait_job(http, job["id"], lambda j: j["state"] == "running", timeout=30)
            m0 = cpu_s(media.proc.pid)
            cpu, wall = await window(job["pid"], warmup, seconds)
            manager_cpu = cpu_s(media.proc.pid) - m0
            running = (await http.get(f"/jobs/{job['id']}")).json()
            done = (await http.post(f"/jobs/{job['id']}/stop")).json()
        finally:
            await replay.stop()
    if done["state"] != "completed":
        raise RuntimeError(f"composite ended {done['state']}: {done.get('error')}")
    check = check_output(Path(done["output_path"]), seconds)
    speaker = running.get("active_speaker")
    return {
        "system": "ours", "cpu_s": cpu, "wall_s": wall, "cpu_s_per_min": cpu * 60 / wall,
        "manager_cpu_s_per_min": manager_cpu * 60 / wall,
        "packets_received": running["stats"]["packets_received"],
        "packets_lost": running["stats"]["packets_lost"],
        "speaker_index": next((i for i, p in enumerate(PEOPLE) if p.name == speaker), 0),
        "check": check.as_dict(), "x264": check.x264_options,
    }  # fmt: skip


async def run_ffmpeg(
    tmp: Path,
    files: list[Path],
    warmup: float,
    seconds: float,
    n: int,
    speaker: int,
    vp8_decoder: str,
) -> dict[str, Any]:
    system = f"ffmpeg_{vp8_decoder}" if vp8_decoder else "ffmpeg"
    n_name = f"{system}-{n}"
    ports = [(free_port_pair(), free_port_pair()) for _ in PEOPLE]
    sdp_path, out, log_path = (tmp / f"{n_name}.sdp", tmp / f"{n_name}.mkv", tmp / f"{n_name}.log")
    sdp_path.write_text(sdp(ports))
    with log_path.open("wb") as log:
        ff = await asyncio.create_subprocess_exec(
            *ffmpeg_argv(sdp_path, out, speaker, vp8_decoder=vp8_decoder),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    replay: GstProcess | None = None
    try:
        await asyncio.sleep(1.0)  # ffmpeg binds its sockets
        replay = await GstProcess.start(*replay_argv(files, ports))
        async with asyncio.timeout(30):  # started = the muxer wrote its header
            while not (out.exists() and out.stat().st_size > 0):
                if ff.returncode is not None:
                    raise RuntimeError(f"ffmpeg exited {ff.returncode}: {log_path.read_text()}")
                await asyncio.sleep(0.1)
        cpu, wall = await window(ff.pid, warmup, seconds)
    finally:
        if ff.returncode is None:
            ff.send_signal(signal.SIGINT)  # ffmpeg finishes the file
        try:
            await asyncio.wait_for(ff.wait(), 30)
        except TimeoutError:
            ff.kill()
            await ff.wait()
        if replay is not None:
            await replay.stop()
    log_text = log_path.read_text(errors="replace")
    check = check_output(out, seconds)
    return {
        "system": system, "cpu_s": cpu, "wall_s": wall, "cpu_s_per_min": cpu * 60 / wall,
        "warnings": [line for line in log_text.splitlines() if line.strip()][:20],
        "check": check.as_dict(), "x264": check.x264_options,
    }  # fmt: skip


SYSTEMS = {  # in the order each round runs them
    "ours": "mediaplane composite worker (GStreamer)",
    "ffmpeg": "ffmpeg amix + xstack, libx264 + libopus (reference)",
    "ffmpeg_libvpx": "the same ffmpeg, VP8 decoded by libvpx as our vp8dec does",
}


async def run(seconds: float, rounds: int, warmup: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-composite-"))
    load0 = os.getloadavg()
    files = await encode_inputs(tmp, warmup + seconds + START_MARGIN_S)
    media = await MediaService.start(tmp / "data")
    runs: list[dict[str, Any]] = []
    try:
        for n in range(rounds):
            a = await run_ours(media, files, warmup, seconds, n)
            runs.append(a)
            for decoder in ("", "libvpx"):
                runs.append(
                    await run_ffmpeg(tmp, files, warmup, seconds, n, a["speaker_index"], decoder)
                )
            for r in runs[-3:]:
                print({k: v for k, v in r.items() if k != "x264"}, file=sys.stderr)
    finally:
        await media.stop()
    per_min = {s: [r["cpu_s_per_min"] for r in runs if r["system"] == s] for s in SYSTEMS}
    median = {s: statistics.median(v) for s, v in per_min.items()}
    x264 = {s: next(r["x264"] for r in runs if r["system"] == s) for s in SYSTEMS}
    livekit = LIVEKIT_CPUS * 60
    return {
        "seconds": seconds, "warmup_s": warmup, "rounds": rounds,
        "loadavg_before": load0, "loadavg_after": os.getloadavg(),
        "cpu_s_per_min": per_min, "median": median,
        "ratio": median["ours"] / median["ffmpeg"],
        "ratio_libvpx": median["ours"] / median["ffmpeg_libvpx"],
        "livekit_cpu_s_per_min": livekit, "ours_vs_livekit": median["ours"] / livekit,
        "manager_cpu_s_per_min": [r["manager_cpu_s_per_min"] for r in runs
                                  if r["system"] == "ours"],
        "packets_lost_ours": sum(r["packets_lost"] for r in runs if r["system"] == "ours"),
        "x264_settings_differ": {k: list(v) for k, v in
                                 option_diff(x264["ours"], x264["ffmpeg"]).items()},
        "x264_settings_ours": x264["ours"],
        "runs": [{k: v for k, v in r.items() if k != "x264"} for r in runs],
    }  # fmt: skip


def table(r: dict[str, Any]) -> str:
    text = (
        "| composite of 3 people, 720p30, H264 2.5 Mb/s + Opus 64 kb/s, mkv "
        "| CPU-s per minute (median) | runs | cores busy |\n| --- | ---: | --- | ---: |\n"
    )
    for system, label in SYSTEMS.items():
        med, each = r["median"][system], ", ".join(f"{v:.1f}" for v in r["cpu_s_per_min"][system])
        text += f"| {label} | {med:.1f} | {each} | {med / 60:.2f} |\n"
    lk = r["livekit_cpu_s_per_min"]
    text += f"| LiveKit Room Composite egress, Chrome-based: its budget, not measured | {lk:.0f} "
    text += f"| - | {lk / 60:.0f} |\n"
    diff = r["x264_settings_differ"]
    diff_text = ", ".join(f"{k} {a} vs {b}" for k, (a, b) in diff.items()) or "none"
    checks = "; ".join(
        f"{x['system']} {x['check']['duration_s']:.0f} s at {x['check']['fps']:.1f} fps"
        for x in r["runs"]
    )
    manager = statistics.median(r["manager_cpu_s_per_min"])
    text += (
        f"\nRatio ours / ffmpeg: **x{r['ratio']:.2f}** (x{r['ratio_libvpx']:.2f} against ffmpeg "
        f"decoding with libvpx); medians of {r['rounds']} runs each, alternating ours, ffmpeg, "
        f"ffmpeg + libvpx; {r['seconds']:.0f} s windows after {r['warmup_s']:.0f} s of warm-up. "
        f"Ours is **{100 * r['ours_vs_livekit']:.0f} %** of the 4 CPUs (240 CPU-s per minute) "
        "LiveKit reserves per Room Composite egress (`roomCompositeCpuCost = 4`, "
        "livekit/egress `pkg/config/service.go`).\n\n"
        "Inputs: three participants pre-encoded once (VP8 640x360 30 fps at 600 kb/s: a "
        "coloured picture with a moving ball and a scrolling SMPTE band; an Opus tone each), "
        "replayed as RTP in real time by one gst-launch per run (its CPU is not counted). "
        "CPU = utime + stime of the worker or ffmpeg process (all threads) from /proc; the "
        f"media manager process itself added {manager:.2f} CPU-s per minute (not in the "
        f"figure). Packets lost in our runs: {r['packets_lost_ours']}.\n\n"
        "Every output was decoded: H264 1280x720 + Opus, the three tones in the mix "
        "(FFT band share > 0.1 each), the red, green and blue tiles at the grid's places "
        f"({checks}). x264 settings read back from the streams' SEI, ours vs ffmpeg, differ "
        f"in: {diff_text}. Left different: our speaker frame is a blended rectangle under the "
        "tile, ffmpeg's a drawbox. Load average before / after: "
        f"{r['loadavg_before'][0]:.2f} / {r['loadavg_after'][0]:.2f} (a shared machine).\n\n"
        "Run: `.venv/bin/python -m benchmarks.composite [--seconds 30] [--rounds 2]` "
        "(the defaults take about 5 minutes; this run used "
        f"`--seconds {r['seconds']:.0f} --rounds {r['rounds']}`)."
    )
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window per run")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each system, alternating")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before the window")
    args = ap.parse_args()
    stamp = start_run()
    r = asyncio.run(run(args.seconds, args.rounds, args.warmup))
    md = table(r)
    write_result(
        "composite",
        "Media manager: room composite cost (3 people, 720p30)",
        r,
        md,
        stamp,
        f"ours x{r['ratio']:.2f} ffmpeg amix + xstack CPU",
    )
    print(md)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
