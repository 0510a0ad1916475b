"""Video on short links: what a subscriber decodes of a room, simulcast against one
full-size encoding, by link rate (issue 20).

`mediaplane up` runs in a network namespace (https), the publishers (one Chromium, a
context each, fake camera at a known rate, their tiles hidden: only encoding costs)
in another, the subscriber (a viewer) in a third whose veth is limited with tbf to
each rate in turn (tests/support/link.py), joining afresh for each rate. Per rate
and mode: each publisher's decoded fps against the rate it sends, the median decoded
width, the share of seconds without a decoded frame, and the SFU worker's CPU
(utime+stime from /proc, all of the room's forwarding: the publishers' ingest and the
one subscriber) over the window. "single" is the same page with `?simulcast=0` (one
1.5 Mbit/s encoding, what a client without simulcast sends). Both modes run in one
process, one after the other: the ratios are the figures to read.

    .venv/bin/python -m benchmarks.video_links [--publishers 3] [--settle 20] [--seconds 20]

Needs root (namespaces). On the 2-core shared machine 3 publishers is what the CPU
allows (each encodes 720p/360p/180p; six pages encoding would make the CPU, not the
link, the limit: qualityLimitationReason is recorded per publisher).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

from playwright.async_api import Page, async_playwright, expect
from tests.integration.test_reach_lan import until_shown, up_in
from tests.support import netns
from tests.support.link import Link
from tests.support.ns_chromium import chromium_in, join

from benchmarks.common import RESULTS, rewrite_text, start_run, write_result
from mediaplane import certificates
from mediaplane.wire.ids import Json

RATES = (300, 600, 1000, 2500)
FPS = 15
INBOUND_JS = """async () => {
  const out = {};
  for (const { consumer, peerId } of window.mediaplane.consumers.values()) {
    if (consumer.kind !== 'video') continue;
    (await consumer.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp') out[peerId] = { frames: s.framesDecoded || 0,
        width: s.frameWidth || 0 };
    });
  }
  return out;
}"""
SENT_JS = """async () => {
  let frames = 0, limited = [];
  (await window.mediaplane.producers.video.getStats()).forEach((s) => {
    if (s.type !== 'outbound-rtp') return;
    frames = Math.max(frames, s.framesSent || 0);
    limited.push(s.qualityLimitationReason);
  });
  return { peerId: window.mediaplane.peerId, frames, limited };
}"""
HIDE_JS = "() => { document.getElementById('tiles').style.display = 'none'; }"


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


async def _measure(viewer: Page, pubs: list[Page], seconds: int, workers: list[int]) -> Json:
    sent0 = [await p.evaluate(SENT_JS) for p in pubs]
    cpu0 = sum(_cpu_s(w) for w in workers)
    t0 = time.monotonic()
    samples = [await viewer.evaluate(INBOUND_JS)]
    for i in range(1, seconds + 1):
        await asyncio.sleep(max(0.0, t0 + i - time.monotonic()))
        samples.append(await viewer.evaluate(INBOUND_JS))
    span = time.monotonic() - t0
    cpu = (sum(_cpu_s(w) for w in workers) - cpu0) / span
    sent1 = [await p.evaluate(SENT_JS) for p in pubs]
    per: list[Json] = []
    for a, b in zip(sent0, sent1, strict=True):
        peer = b["peerId"]
        got = [s.get(peer, {"frames": 0, "width": 0}) for s in samples]
        widths = sorted(g["width"] for g in got[1:])
        per_second = [y["frames"] - x["frames"] for x, y in itertools.pairwise(got)]
        per.append({
            "sent_fps": (b["frames"] - a["frames"]) / span,
            "decoded_fps": (got[-1]["frames"] - got[0]["frames"]) / span,
            "median_width": widths[len(widths) // 2],
            "empty_seconds": sum(1 for n in per_second if n == 0),
            "limited": sorted(set(b["limited"])),
        })  # fmt: skip
    n = len(per)
    return {
        "publishers": per,
        "decoded_share": sum(p["decoded_fps"] for p in per)
        / max(sum(p["sent_fps"] for p in per), 1e-9),
        "decoded_fps": sum(p["decoded_fps"] for p in per) / n,
        "median_width": sorted(p["median_width"] for p in per)[n // 2],
        "empty_seconds": sum(p["empty_seconds"] for p in per),
        "sfu_cpu_percent": 100 * cpu,
        "seconds": span,
        "load": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


async def run(publishers: int, settle: int, seconds: int) -> Json:
    lan = netns.Lan.create(3)  # 0: the system, 1: the publishers, 2: the subscriber
    out: Json = {"simulcast": {}, "single": {}}
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
                args = [f"--use-fake-device-for-media-stream=fps={FPS}"]
                pub_browser = await chromium_in(pw, lan, 1, spki, tmp, extra=args)
                sub_browser = await chromium_in(pw, lan, 2, spki, tmp)
                errors: list[str] = []
                for mode in ("simulcast", "single"):
                    room = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
                    query = "" if mode == "simulcast" else "&simulcast=0"
                    pubs = []
                    for i in range(publishers):
                        page = await join(pub_browser, url, room, f"P{i}", errors, query=query)
                        await page.evaluate(HIDE_JS)
                        pubs.append(page)
                    for rate in RATES:
                        with Link(lan, 2).rate(rate):
                            viewer = await join(sub_browser, url, room, "Sub", errors, viewer=True)
                            for i in range(publishers):
                                await expect(
                                    viewer.get_by_role("figure", name=f"P{i}")
                                ).to_be_visible(timeout=30000)
                            await asyncio.sleep(settle)
                            got = await _measure(viewer, pubs, seconds, workers)
                            await viewer.context.close()
                        out[mode][str(rate)] = got
                        print(mode, rate, {k: v for k, v in got.items() if k != "publishers"},
                              file=sys.stderr, flush=True)  # fmt: skip
                    for page in pubs:
                        await page.context.close()
                out["errors"] = errors[:20]
                await sub_browser.close()
                await pub_browser.close()
    finally:
        lan.close()
    return out


def table(data: Json, publishers: int) -> str:
    rows = [
        f"| link (kbit/s) | mode | decoded / sent frames | decoded fps per publisher | "
        f"median width (px) | seconds without a frame (all {publishers}) | SFU worker CPU % |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rate in RATES:
        for mode in ("simulcast", "single"):
            r = data[mode][str(rate)]
            rows.append(f"| {rate} | {mode} | {100 * r['decoded_share']:.0f} % | "
                        f"{r['decoded_fps']:.1f} | {r['median_width']} | {r['empty_seconds']} | "
                        f"{r['sfu_cpu_percent']:.1f} |")  # fmt: skip
    rows.append("")
    rows.append(
        "| link (kbit/s) | decoded frames simulcast / single | SFU CPU simulcast / single |"
    )
    rows.append("| ---: | ---: | ---: |")
    for rate in RATES:
        s, o = data["simulcast"][str(rate)], data["single"][str(rate)]
        cpu = s["sfu_cpu_percent"] / max(o["sfu_cpu_percent"], 1e-9)
        rows.append(f"| {rate} | {_ratio(s, o)} | x{cpu:.2f} |")
    rows.append("")
    rows.append(
        f"{data['settings']['fps']} fps fake cameras; each figure over "
        f"{data['settings']['seconds']} s after {data['settings']['settle_s']} s of settling. "
        "The SFU worker's CPU is all of the room's forwarding (the publishers' ingest and "
        "the one subscriber), so it is the cost per subscriber too. The load average at "
        "each window is in the JSON: above ~10 the publishers send fewer frames than their "
        "cameras make (the decoded share is against what they sent)."
    )
    return "\n".join(rows)


def _ratio(s: Json, o: Json) -> str:
    if o["decoded_share"] < 0.01:
        return f"{100 * s['decoded_share']:.0f} % against {100 * o['decoded_share']:.1f} %"
    return f"x{s['decoded_share'] / o['decoded_share']:.2f}"


def _headline(data: Json) -> str:
    s, o = data["simulcast"]["600"], data["single"]["600"]
    return f"at 600 kbit/s: simulcast {_ratio(s, o)} of the frames sent decoded (vs one encoding)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument("--settle", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--render", action="store_true", help="re-render the stored result")
    a = parser.parse_args()
    if a.render:
        stored = json.loads((RESULTS / "video_links.json").read_text())["data"]
        rewrite_text(
            "video_links", table(stored, stored["settings"]["publishers"]), _headline(stored)
        )
        return
    if (why := netns.available()) is not None:
        sys.exit(f"video_links: {why}")
    # `up` on a network address refuses the repository's development secrets.
    for name in ("SFU_SECRET", "API_SECRET", "MEDIA_SECRET", "WEBHOOK_SECRET"):
        os.environ.setdefault(f"MEDIAPLANE_{name}", f"bench-{secrets.token_urlsafe(24)}")
    stamp = start_run()
    data = asyncio.run(run(a.publishers, a.settle, a.seconds))
    data["settings"] = {"publishers": a.publishers, "settle_s": a.settle, "seconds": a.seconds,
                        "fps": FPS, "rates_kbit": list(RATES)}  # fmt: skip
    md = table(data, a.publishers)
    path = write_result(
        "video_links",
        f"Video on short links: {a.publishers} publishers, one subscriber, "
        "simulcast vs one encoding",
        data,
        md,
        stamp,
        _headline(data),
    )
    print(md)
    print(f"written {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
