"""Media manager recording costs, with ffmpeg as the reference in the same run.

(a) CPU-seconds per recorded minute of one Opus recording: our worker
    (PyGObject + rtpbin + oggmux) next to `ffmpeg -protocol_whitelist
    file,udp,rtp -i stream.sdp -c copy` fed the very same RTP stream (one
    sender, two destinations). Steady-state CPU is measured after start-up.
(b) Concurrent audio recordings on this machine: N recordings at once, each fed
    its own 50 pps Opus RTP stream from one Python sender; the largest N in the
    series with no packet lost (as rtpbin counts it, and received == sent), and
    the RSS per recording.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

from tests.support.gst import GstProcess
from tests.support.media import OPUS, MediaService

from benchmarks.common import start_run, write_result

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
STEPS = [int(x) for x in os.environ.get("BENCH_STEPS", "10,25,50,100,150").split(",")]
SILENCE = b"\xf8\xff\xfe"  # a valid 20 ms Opus frame


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK


def pss_mib(pid: int) -> float:
    """Proportional set size: shared libraries split across the processes sharing them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def one_recording(media: MediaService, tmp: Path) -> dict[str, float]:
    async with media.client() as http:
        job = (await http.post("/recordings", json={"filePath": "cpu", "audio": OPUS})).json()
        port_ours = job["rtp"]["audio"]["port"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port_ff = s.getsockname()[1]
        sdp = tmp / "stream.sdp"
        sdp.write_text(
            "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=ref\nc=IN IP4 127.0.0.1\nt=0 0\n"
            f"m=audio {port_ff} RTP/AVP 100\na=rtpmap:100 opus/48000/2\n"
        )
        ff = await asyncio.create_subprocess_exec(
            "ffmpeg", "-nostdin", "-loglevel", "error", "-protocol_whitelist", "file,udp,rtp",
            "-i", str(sdp), "-c", "copy", "-y", str(tmp / "ref.ogg"),
        )  # fmt: skip
        await asyncio.sleep(1.0)  # ffmpeg opens its socket
        tx = await GstProcess.start(
            "audiotestsrc", "is-live=true", "wave=sine", "freq=440", "samplesperbuffer=960",
            f"num-buffers={int((SECONDS + 5) * 50)}", "!", "audio/x-raw,rate=48000,channels=2", "!",
            "audioconvert", "!", "opusenc", "frame-size=20", "!", "rtpopuspay", "pt=100", "!",
            "multiudpsink", f"clients=127.0.0.1:{port_ours},127.0.0.1:{port_ff}", "sync=false",
        )  # fmt: skip
        await asyncio.sleep(5.0)  # start-up is not the steady state
        c_ours, c_ff, t0 = cpu_s(job["pid"]), cpu_s(ff.pid), time.monotonic()
        rss_ours, rss_ff = pss_mib(job["pid"]), pss_mib(ff.pid)
        await tx.wait(SECONDS + 30)
        wall = time.monotonic() - t0
        d_ours, d_ff = cpu_s(job["pid"]) - c_ours, cpu_s(ff.pid) - c_ff
        await http.post(f"/jobs/{job['id']}/stop")
        ff.send_signal(signal.SIGINT)
        await ff.wait()
    per_min = 60.0 / wall
    return {
        "wall_s": wall,
        "ours_cpu_s_per_min": d_ours * per_min,
        "ffmpeg_cpu_s_per_min": d_ff * per_min,
        "ratio": d_ours / d_ff if d_ff > 0 else float("inf"),
        "ours_rss_mib": rss_ours,
        "ffmpeg_rss_mib": rss_ff,
    }


async def send_streams(ports: list[int], seconds: float) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 2**20)
    start, total = time.monotonic(), int(seconds * 50)
    for i in range(total):
        for n, port in enumerate(ports):
            hdr = struct.pack("!BBHII", 0x80, 100, i & 0xFFFF, i * 960 & 0xFFFFFFFF, 1000 + n)
            sock.sendto(hdr + SILENCE, ("127.0.0.1", port))
        delay = start + (i + 1) / 50 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    sock.close()
    return total


async def concurrent(media: MediaService, n: int, seconds: float) -> dict[str, float]:
    async with media.client() as http:
        rs = await asyncio.gather(
            *(
                http.post("/recordings", json={"filePath": f"n{n}/{i}", "audio": OPUS})
                for i in range(n)
            )
        )
        jobs = [r.json() for r in rs]
        if any(r.status_code != 202 for r in rs):
            raise RuntimeError(f"could not start {n} recordings: {rs[0].text}")
        sent = await send_streams([j["rtp"]["audio"]["port"] for j in jobs], seconds)
        await asyncio.sleep(1.5)  # one stats period
        states = [(await http.get(f"/jobs/{j['id']}")).json() for j in jobs]
        rss = sum(pss_mib(j["pid"]) for j in jobs) / n
        await asyncio.gather(*(http.post(f"/jobs/{j['id']}/stop") for j in jobs))
    failed = sum(1 for s in states if s["state"] != "running")
    received = sum(s["stats"]["packets_received"] for s in states)
    lost = sum(s["stats"]["packets_lost"] for s in states)
    return {"n": n, "sent": sent * n, "received": received, "lost": lost,
            "loss_pct": 100.0 * (1 - received / (sent * n)), "rss_mib_per_recording": rss,
            "not_running": failed}  # fmt: skip


async def run() -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp())
    media = await MediaService.start(tmp / "data", budget=10_000)
    try:
        single = await one_recording(media, tmp)
        print(single, file=sys.stderr)
        steps = []
        for n in STEPS:
            r = await concurrent(media, n, 10.0)
            print(r, file=sys.stderr)
            steps.append(r)
            if r["lost"] > 0 or r["received"] < r["sent"] or r["not_running"]:
                break
        return {"single": single, "concurrent": steps}
    finally:
        await media.stop()


def main() -> None:
    stamp = start_run()
    r = asyncio.run(run())
    single, steps = r["single"], r["concurrent"]
    assert isinstance(single, dict) and isinstance(steps, list)
    clean = [
        s["n"] for s in steps
        if s["lost"] == 0 and s["received"] >= s["sent"] and not s["not_running"]
    ]  # fmt: skip
    ours, ref = single["ours_cpu_s_per_min"], single["ffmpeg_cpu_s_per_min"]
    table = "| recorder | CPU-s per recorded minute | PSS (MiB) |\n| --- | ---: | ---: |\n"
    table += f"| ffmpeg -c copy (reference) | {ref:.2f} | {single['ffmpeg_rss_mib']:.0f} |\n"
    table += (
        f"| mediaplane worker (rtpbin + oggmux) | {ours:.2f} | {single['ours_rss_mib']:.0f} |\n"
    )
    table += (
        f"\nRatio ours / ffmpeg: **x{single['ratio']:.2f}** CPU over {single['wall_s']:.0f} s "
        "of the same RTP stream (CPU from /proc in 10 ms ticks).\n\n"
        "| concurrent recordings N | packets sent | received | lost | not running "
        "| PSS per recording (MiB) |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    for st in steps:
        table += (
            f"| {st['n']} | {st['sent']} | {st['received']} | {st['lost']} "
            f"| {st['not_running']} | {st['rss_mib_per_recording']:.1f} |\n"
        )
    table += (
        f"\nLargest N in the series with no packet lost: **{max(clean) if clean else 0}** "
        "(10 s per step, 50 pps each; the series stops at the first loss or failed start)."
    )
    write_result(
        "media_recorder",
        "Media manager: recording cost and capacity",
        r,
        table,
        stamp,
        f"ours x{single['ratio']:.2f} ffmpeg -c copy CPU; {max(clean) if clean else 0} "
        "concurrent recordings clean",
    )
    print(table)


if __name__ == "__main__":
    main()
