"""Video on short links: what a subscriber decodes of a room, simulcast against one
full-size encoding, by link rate, and what each subscriber costs the SFU (issue 20).

A room of six people: `mediaplane up` runs in a network namespace (https), the
publishers (one Chromium, a context each, fake camera at a known rate, their own tiles
hidden: they encode and send, nothing they receive is decoded) in a second, and

* the link-limited subscriber (a viewer) in a third, whose veth tbf limits to each rate
  in turn, joining afresh for each rate. Per rate and mode: each publisher's decoded fps
  against the rate it sends, the median decoded width, the seconds without a decoded
  frame and the share of frames decoded. 5 publishers + this subscriber = 6 people.
* unlimited subscribers (viewers, the normal page in a 1000x700 viewport: small tiles)
  in a fourth, one Chromium for all: with the publishers of a mode in place, the SFU
  worker's CPU (utime+stime from /proc) over a window with 1 and then with K of them;
  (cpu(K) - cpu(1)) / (K - 1) is the cost of one subscriber.

"single" is the same page with `?simulcast=0` (one 1.5 Mbit/s encoding, what a client
without simulcast sends). Both modes run in one process, one after the other: the
ratios are the figures to read. Each publisher's qualityLimitationReason and the share
of the window its encoder was CPU-limited are recorded: if the publishers' CPU, not the
link, limits what is sent, lower `--fps` (or `--publishers`, with `--idle` camera-off
viewers keeping the room at six).

    .venv/bin/python -m benchmarks.video_links [--publishers 5] [--fps 10] [--subscribers 3]
        [--settle 15] [--seconds 20] [--rates 300,600,1000,2500]

Needs root (namespaces).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright, expect
from tests.integration.test_reach_lan import until_shown, up_in
from tests.support import netns
from tests.support.link import Link
from tests.support.ns_chromium import chromium_in, join

from benchmarks.common import RESULTS, rewrite_text, start_run, write_result
from mediaplane import certificates
from mediaplane.wire.ids import Json

RATES = (300, 600, 1000, 2500)
FPS = 10  # at 15 the run alone took 115 % of the 2 cores (the docs say why)
PUBLISHERS = 5
SUBSCRIBERS = 3  # K of the per-subscriber CPU figure
SETTLE_S = 15
SECONDS = 20
MODES = ("simulcast", "single")
INBOUND_JS = """async () => {
  const out = {};
  for (const { consumer, peerId } of window.mediaplane.consumers.values()) {
    if (consumer.kind !== 'video') continue;
    (await consumer.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp') out[peerId] = { frames: s.framesDecoded || 0,
        width: s.frameWidth || 0, bytes: s.bytesReceived || 0 };
    });
  }
  return out;
}"""
SENT_JS = """async () => {
  let frames = 0, r0 = null, cpu = 0, bytes = 0, limited = [], widths = [];
  (await window.mediaplane.producers.video.getStats()).forEach((s) => {
    if (s.type !== 'outbound-rtp') return;
    frames = Math.max(frames, s.framesSent || 0);
    bytes += s.bytesSent || 0;
    if (s.rid === 'r0') r0 = s.framesSent || 0;  // the layer always sent (dynacast)
    cpu = Math.max(cpu, (s.qualityLimitationDurations || {}).cpu || 0);
    limited.push(s.qualityLimitationReason);
    if (s.frameWidth) widths.push(s.frameWidth);
  });
  return { peerId: window.mediaplane.peerId, frames: r0 ?? frames, cpu, bytes,
    limited, widths };
}"""
PRODUCING_JS = "() => Boolean(window.mediaplane.producers.video)"
HIDE_JS = "() => { document.getElementById('tiles').style.display = 'none'; }"


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def _tree_s(root: int) -> float:
    """CPU seconds of `root` and its live descendants (this run's own processes)."""
    total = 0.0
    for pid in _descendants_named(root, ""):  # root included
        with contextlib.suppress(OSError):
            total += _cpu_s(pid)
    return total


def _descendants_named(root: int, name: str) -> list[int]:
    parent: dict[int, int] = {}
    comm: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            comm[int(d.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
            parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out = []
    for pid, c in comm.items():
        p = pid
        while p > 1 and p != root:
            p = parent.get(p, 1)
        if p == root and c.startswith(name):
            out.append(pid)
    return out


async def _measure(viewers: list[Page], pubs: list[Page], seconds: int, workers: list[int]) -> Json:
    """Over one window: the first viewer's decoded frames each second, the others' at its
    ends, what each publisher sent, the SFU workers' CPU."""
    sent0 = [await p.evaluate(SENT_JS) for p in pubs]
    others0 = [await v.evaluate(INBOUND_JS) for v in viewers[1:]]
    cpu0 = sum(_cpu_s(w) for w in workers)
    busy0, ours0 = _busy_s(), _tree_s(os.getpid())
    t0 = time.monotonic()
    samples = [await viewers[0].evaluate(INBOUND_JS)]
    for i in range(1, seconds + 1):
        await asyncio.sleep(max(0.0, t0 + i - time.monotonic()))
        samples.append(await viewers[0].evaluate(INBOUND_JS))
    span = time.monotonic() - t0
    cpu = (sum(_cpu_s(w) for w in workers) - cpu0) / span
    busy, ours = (_busy_s() - busy0) / span, (_tree_s(os.getpid()) - ours0) / span
    others1 = [await v.evaluate(INBOUND_JS) for v in viewers[1:]]
    sent1 = [await p.evaluate(SENT_JS) for p in pubs]
    per: list[Json] = []
    none = {"frames": 0, "width": 0, "bytes": 0}
    for a, b in zip(sent0, sent1, strict=True):
        peer = b["peerId"]
        got = [s.get(peer, none) for s in samples]
        widths = sorted(g["width"] for g in got[1:])
        per_second = [y["frames"] - x["frames"] for x, y in itertools.pairwise(got)]
        per.append({
            "sent_fps": (b["frames"] - a["frames"]) / span,
            # a consumer made anew (a resume) starts its count at 0: only increments count
            "decoded_fps": sum(max(0, n) for n in per_second) / span,
            "median_width": widths[len(widths) // 2],
            "empty_seconds": sum(1 for n in per_second if n <= 0),
            "limited": sorted(set(b["limited"])),
            "cpu_limited_share": (b["cpu"] - a["cpu"]) / span,
            "sent_widths": sorted(b["widths"]),
        })  # fmt: skip
    n = len(per)
    peers = [b["peerId"] for b in sent1]

    def kbit(x: Json, y: Json) -> float:  # one viewer's received video
        return (
            float(sum(y.get(q, none)["bytes"] - x.get(q, none)["bytes"] for q in peers))
            * 8e-3
            / span
        )

    out_kbit = kbit(samples[0], samples[-1])
    out_kbit += sum(kbit(x, y) for x, y in zip(others0, others1, strict=True))
    return {
        "publishers": per,
        "decoded_share": sum(p["decoded_fps"] for p in per)
        / max(sum(p["sent_fps"] for p in per), 1e-9),
        "sent_fps": sum(p["sent_fps"] for p in per) / n,
        "decoded_fps": sum(p["decoded_fps"] for p in per) / n,
        "median_width": sorted(p["median_width"] for p in per)[n // 2],
        "empty_seconds": sum(p["empty_seconds"] for p in per),
        "cpu_limited_share": max(p["cpu_limited_share"] for p in per),
        "other_viewers_decoded_fps": [
            sum(y.get(q, none)["frames"] - x.get(q, none)["frames"] for q in peers) / n / span
            for x, y in zip(others0, others1, strict=True)
        ],
        "sfu_cpu_percent": 100 * cpu,
        "in_kbit": sum(b["bytes"] - a["bytes"] for a, b in zip(sent0, sent1, strict=True))
        * 8e-3 / span,  # what the publishers sent, all layers
        "out_kbit": out_kbit,  # what the viewers received (video)
        # of one core: the machine's (all cores, with other sessions'), this run's processes
        "machine_cpu_percent": 100 * busy,
        "ours_cpu_percent": 100 * ours,
        "seconds": span,
        "load": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


async def _join(
    browser: Browser, url: str, room: str, name: str, errors: list[str], **kw: Any
) -> Page:
    """join(), once more if the first try fails (at load ~20 a join's socket has dropped
    mid-setup: "Could not join: reconnecting"); the failure goes in errors."""
    try:
        return await join(browser, url, room, name, errors, **kw)
    except AssertionError as e:
        errors.append(f"{name}: join retried: {str(e).splitlines()[0]}")
        for context in browser.contexts[-1:]:
            await context.close()
        return await join(browser, url, room, name, errors, **kw)


async def _seen(page: Page, publishers: int) -> None:
    for i in range(publishers):
        await expect(page.get_by_role("figure", name=f"P{i}")).to_be_visible(timeout=30000)


async def _per_subscriber(
    browser: Browser, url: str, room: str, pubs: list[Page], k: int,
    settle: int, seconds: int, workers: list[int], errors: list[str],
) -> Json:  # fmt: skip
    """The SFU worker's CPU with 1, k, 1, k unlimited viewers of the room (alternating, so
    that a drift of the machine's load falls on both counts)."""
    viewers: list[Page] = []
    windows: list[Json] = []
    joined = 0
    for count in (1, k, 1, k):
        for v in viewers[count:]:
            await v.context.close()
        del viewers[count:]
        while len(viewers) < count:
            viewers.append(await _join(browser, url, room, f"V{joined}", errors, viewer=True))
            joined += 1
        for v in viewers:
            await _seen(v, len(pubs))
        await asyncio.sleep(settle if count > 1 or not windows else 5)
        got = {"viewers": count, **await _measure(viewers, pubs, seconds, workers)}
        windows.append(got)
        print(f"{count} viewers: SFU {got['sfu_cpu_percent']:.1f} % CPU, "
              f"{got['decoded_fps']:.1f} fps, {got['median_width']} px, "
              f"others {[round(f, 1) for f in got['other_viewers_decoded_fps']]}, "
              f"in {got['in_kbit']:.0f} out {got['out_kbit']:.0f} kbit/s, "
              f"load {got['load']}", file=sys.stderr, flush=True)  # fmt: skip
    for v in viewers:
        await v.context.close()
    ones = [w["sfu_cpu_percent"] for w in windows if w["viewers"] == 1]
    manys = [w["sfu_cpu_percent"] for w in windows if w["viewers"] == k]
    return {
        "windows": windows,
        "per_subscriber_cpu_percent": (sum(manys) / len(manys) - sum(ones) / len(ones)) / (k - 1),
        "pair_estimates": [(m - o) / (k - 1) for o, m in zip(ones, manys, strict=True)],
    }


async def run(
    publishers: int, idle: int, fps: int, k: int, rates: list[int], settle: int, seconds: int
) -> Json:
    # 0: the system, 1: the publishers, 2: the limited subscriber, 3: unlimited subscribers
    lan = netns.Lan.create(4)
    out: Json = {mode: {"rates": {}} for mode in MODES}
    try:
        with tempfile.TemporaryDirectory(prefix="video-links-") as tmp_name:
            tmp = Path(tmp_name)
            address = lan.ip(0)
            extra = {"MEDIAPLANE_HOST": "0.0.0.0", "MEDIAPLANE_ANNOUNCED_ADDRESS": address,
                     "MEDIAPLANE_RTC_LISTEN_IP": address}  # fmt: skip
            async with up_in(lan, 0, tmp, extra) as up, async_playwright() as pw:
                url = f"https://{address}:8080"
                await until_shown(up, f"mediaplane at {url}", 90)
                tls = up.data_dir / "tls"
                spki = certificates.load(tls / "cert.pem", tls / "key.pem").spki_sha256
                workers = _descendants_named(up.proc.pid, "mediasoup-work")
                args = [f"--use-fake-device-for-media-stream=fps={fps}"]
                pub_browser = await chromium_in(pw, lan, 1, spki, tmp, extra=args)
                sub_browser = await chromium_in(pw, lan, 2, spki, tmp)
                many_browser = await chromium_in(pw, lan, 3, spki, tmp)
                errors: list[str] = []
                for mode in MODES:
                    room = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
                    query = "" if mode == "simulcast" else "&simulcast=0"
                    pubs, idlers = [], []
                    for i in range(publishers):
                        page = await _join(pub_browser, url, room, f"P{i}", errors, query=query)
                        await page.evaluate(HIDE_JS)
                        # "In room" comes before the camera is produced (slow under load)
                        await page.wait_for_function(PRODUCING_JS, timeout=60000)
                        pubs.append(page)
                    for i in range(idle):  # camera-off people: viewers that see nothing
                        page = await _join(pub_browser, url, room, f"I{i}", errors, viewer=True)
                        await page.evaluate(HIDE_JS)
                        idlers.append(page)
                    print(mode, "SFU CPU per subscriber", file=sys.stderr, flush=True)
                    out[mode]["cpu"] = await _per_subscriber(
                        many_browser, url, room, pubs, k, settle, seconds, workers, errors
                    )
                    for rate in rates:
                        with Link(lan, 2).rate(rate):
                            viewer = await _join(sub_browser, url, room, "Sub", errors, viewer=True)
                            await _seen(viewer, publishers)
                            await asyncio.sleep(settle)
                            got = await _measure([viewer], pubs, seconds, workers)
                            await viewer.context.close()
                        out[mode]["rates"][str(rate)] = got
                        print(mode, rate, {k: v for k, v in got.items() if k != "publishers"},
                              file=sys.stderr, flush=True)  # fmt: skip
                    for page in pubs + idlers:
                        await page.context.close()
                out["errors"] = errors[:20]
                await many_browser.close()
                await sub_browser.close()
                await pub_browser.close()
    finally:
        lan.close()
    return out


def table(data: Json) -> str:
    st = data["settings"]
    rates = st["rates_kbit"]
    people = st["publishers"] + st.get("idle", 0) + 1
    rows = [
        f"| link (kbit/s) | mode | decoded / sent frames | decoded fps per publisher "
        f"(sent) | median width (px) | seconds without a frame (all {st['publishers']}) "
        "| publishers' encoders CPU-limited |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rate in rates:
        for mode in MODES:
            r = data[mode]["rates"][str(rate)]
            cpu = 100 * r["cpu_limited_share"]
            rows.append(f"| {rate} | {mode} | {100 * r['decoded_share']:.0f} % | "
                        f"{r['decoded_fps']:.1f} ({r['sent_fps']:.1f}) | {r['median_width']} | "
                        f"{r['empty_seconds']} | {cpu:.0f} % |")  # fmt: skip
    rows += ["", "| link (kbit/s) | decoded frames simulcast / single |", "| ---: | ---: |"]
    for rate in rates:
        s, o = data["simulcast"]["rates"][str(rate)], data["single"]["rates"][str(rate)]
        rows.append(f"| {rate} | {_ratio(s, o)} |")
    k = st["subscribers"]
    rows += [
        "",
        f"| mode | SFU worker CPU %, 1 subscriber | {k} subscribers "
        "| per subscriber (each pair) | publishers sent (kbit/s) "
        f"| viewers received, 1 / {k} (kbit/s) "
        f"| the {k} viewers' decoded fps per publisher, median width (px) "
        "| machine CPU % (this run's), each window |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for mode in MODES:
        c = data[mode]["cpu"]
        ws = c.get("windows") or [{"viewers": 1, **c["1"]}, {"viewers": k, **c[str(k)]}]
        one = [w for w in ws if w["viewers"] == 1]
        many = [w for w in ws if w["viewers"] == k]
        last = many[-1]
        fps = [last["decoded_fps"], *last["other_viewers_decoded_fps"]]
        pairs = c.get("pair_estimates", [c["per_subscriber_cpu_percent"]])
        rows.append(f"| {mode} | {_each(one, 'sfu_cpu_percent')} | "
                    f"{_each(many, 'sfu_cpu_percent')} | "
                    f"{c['per_subscriber_cpu_percent']:.2f} % ({_list(pairs, '.2f')}) | "
                    f"{_each(one, 'in_kbit', '.0f')} | {_each(one, 'out_kbit', '.0f')} / "
                    f"{_each(many, 'out_kbit', '.0f')} | "
                    f"{' / '.join(f'{f:.1f}' for f in fps)}, {last['median_width']} | "
                    f"{' / '.join(_machine(w) for w in ws)} |")  # fmt: skip
    rows += ["", _cpu_ratio(data), ""]
    rows.append(
        f"{people} people in each room: {st['publishers']} publishers (fake cameras at "
        f"{st['fps']} fps, 1280x720){_idle(st)} and the subscriber on the limited link, "
        f"joining afresh at each rate. Each figure over {st['seconds']} s after "
        f"{st['settle_s']} s of settling. The SFU CPU per subscriber is "
        f"(mean CPU with {k} - mean CPU with 1) / {k - 1} over windows of 1, {k}, 1, {k} "
        "viewers (5 s of settling after viewers leave), unlimited viewers in a 1000x700 page "
        f"({st['publishers']} small tiles), measured with the publishers of the mode in "
        "place and no limited subscriber; % of one core (the machine has 2). The load "
        "average at each window is in the JSON."
    )
    return "\n".join(rows)


def _list(xs: list[float], fmt: str = ".1f") -> str:
    return ", ".join(format(x, fmt) for x in xs)


def _each(ws: list[Json], key: str, fmt: str = ".1f") -> str:
    return _list([w[key] for w in ws if key in w], fmt) or "?"


def _machine(r: Json) -> str:
    if "machine_cpu_percent" not in r:
        return "?"
    return f"{r['machine_cpu_percent']:.0f} ({r['ours_cpu_percent']:.0f})"


def _idle(st: Json) -> str:
    n = st.get("idle", 0)
    return f", {n} camera-off participants (viewers, tiles hidden)" if n else ""


def _cpu_per_subscriber(data: Json) -> tuple[float, float]:
    return (
        data["simulcast"]["cpu"]["per_subscriber_cpu_percent"],
        data["single"]["cpu"]["per_subscriber_cpu_percent"],
    )


def _cpu_ratio(data: Json) -> str:
    s, o = _cpu_per_subscriber(data)
    if min(s, o) <= 0.05:  # below what windows on this shared machine resolve
        return (
            f"SFU CPU per subscriber: simulcast {s:.2f} % against {o:.2f} %: not resolved "
            "(no ratio; see each window's send rates and machine CPU)."
        )
    return f"SFU CPU per subscriber simulcast / single: x{s / o:.2f}."


def _ratio(s: Json, o: Json) -> str:
    if o["decoded_share"] < 0.01:
        return f"{100 * s['decoded_share']:.0f} % against {100 * o['decoded_share']:.1f} %"
    return f"x{s['decoded_share'] / o['decoded_share']:.2f}"


def _headline(data: Json) -> str:
    rate = "600" if "600" in data["simulcast"]["rates"] else next(iter(data["simulcast"]["rates"]))
    s, o = data["simulcast"]["rates"][rate], data["single"]["rates"][rate]
    cs, co = _cpu_per_subscriber(data)
    cpu = f"x{cs / co:.2f}" if min(cs, co) > 0.05 else "not resolved"
    return (
        f"at {rate} kbit/s: simulcast {_ratio(s, o)} of the frames sent decoded (vs one "
        f"encoding); SFU CPU per subscriber {cs:.2f} % vs {co:.2f} % ({cpu})"
    )


def _title(st: Json) -> str:
    people = st["publishers"] + st.get("idle", 0) + 1
    return (
        f"Video on short links: a room of {people} ({st['publishers']} publishers), "
        "simulcast vs one encoding"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--publishers", type=int, default=PUBLISHERS)
    parser.add_argument("--idle", type=int, default=0, help="camera-off participants")
    parser.add_argument("--fps", type=int, default=FPS, help="the fake cameras' frame rate")
    parser.add_argument("--subscribers", type=int, default=SUBSCRIBERS, help="K (>= 2)")
    parser.add_argument("--rates", default=",".join(str(r) for r in RATES), help="kbit/s")
    parser.add_argument("--settle", type=int, default=SETTLE_S)
    parser.add_argument("--seconds", type=int, default=SECONDS)
    parser.add_argument("--render", action="store_true", help="re-render the stored result")
    a = parser.parse_args()
    if a.render:
        stored = json.loads((RESULTS / "video_links.json").read_text())["data"]
        rewrite_text("video_links", table(stored), _headline(stored))
        return
    if a.subscribers < 2:
        sys.exit("video_links: --subscribers must be at least 2")
    if (why := netns.available()) is not None:
        sys.exit(f"video_links: {why}")
    # `up` on a network address refuses the repository's development secrets.
    for name in ("SFU_SECRET", "API_SECRET", "MEDIA_SECRET", "WEBHOOK_SECRET", "TURN_SECRET"):
        os.environ.setdefault(f"MEDIAPLANE_{name}", f"bench-{secrets.token_urlsafe(24)}")
    rates = [int(r) for r in a.rates.split(",")]
    stamp = start_run()
    data = asyncio.run(run(a.publishers, a.idle, a.fps, a.subscribers, rates, a.settle, a.seconds))
    data["settings"] = {"publishers": a.publishers, "idle": a.idle, "settle_s": a.settle,
                        "seconds": a.seconds, "fps": a.fps, "subscribers": a.subscribers,
                        "rates_kbit": rates}  # fmt: skip
    md = table(data)
    path = write_result("video_links", _title(data["settings"]), data, md, stamp, _headline(data))
    print(md)
    print(f"written {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
