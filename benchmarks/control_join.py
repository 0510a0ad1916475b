"""Control-plane join costs, with references measured in the same run.

(a) Join to first audio: WebSocket connect -> join -> recv transport -> consume
    -> resume -> first decoded audio frame of a publisher already in the room,
    20 sequential subscribers. Reference: the same subscription made straight
    over the SFU RPC (no control plane, no signaling, no Redis).
(b) Signaling throughput: 50 peers connect and join one room at once (each join
    fans `peerJoined` out to everyone already there). Reference: one peer
    joining an empty room, in the same run.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.control import ControlInstance, participant

from benchmarks.common import MIN_TAIL_SAMPLES, start_run, tail, tail_md, write_result
from mediaplane.peer import MediasoupPeer, SfuSignaling, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from mediaplane.sfu import SfuClient, SfuProcess
from mediaplane.state.redis_server import RedisServer

JOINS = MIN_TAIL_SAMPLES  # enough for a p99
SINGLE_JOINS = MIN_TAIL_SAMPLES
CONCURRENT = 50


async def first_audio_via_control(
    settings: Settings, inst: ControlInstance, room: str, producer_id: str, i: int
) -> float:
    t0 = time.perf_counter()
    sig = await SignalingClient.connect(inst.ws(room), participant(settings, f"sub{i}", room))
    joined = await sig.request("join")
    peer = MediasoupPeer(sig, joined["routerRtpCapabilities"])
    _, track = await peer.subscribe(producer_id)
    await asyncio.wait_for(track.recv(), 10)
    elapsed = time.perf_counter() - t0
    await peer.close()
    await sig.close()
    return elapsed


async def first_audio_via_sfu(
    client: SfuClient, router_id: str, caps: dict, producer_id: str
) -> float:  # type: ignore[type-arg]
    t0 = time.perf_counter()
    peer = MediasoupPeer(SfuSignaling(client, router_id), caps)
    _, track = await peer.subscribe(producer_id)
    await asyncio.wait_for(track.recv(), 10)
    elapsed = time.perf_counter() - t0
    await peer.close()
    return elapsed


async def join_only(
    settings: Settings, inst: ControlInstance, room: str, i: int
) -> tuple[float, SignalingClient]:
    t0 = time.perf_counter()
    sig = await SignalingClient.connect(inst.ws(room), participant(settings, f"p{i}", room))
    await sig.request("join")
    return time.perf_counter() - t0, sig


def stats(samples: list[float]) -> dict[str, object]:
    t = tail(samples)  # seconds
    return {"p50_ms": 1000 * t["p50"], "tail_ms": 1000 * t["tail"], "tail_of": t["tail_of"],
            "n": t["n"]}  # fmt: skip


async def run() -> dict[str, object]:
    settings = Settings(env="test")
    tmp = Path(tempfile.mkdtemp())
    redis = await RedisServer.start(tmp / "redis", persist=False)
    sfu = await SfuProcess.start(settings, port=0, num_workers=1)
    inst = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis.url)
    client = await SfuClient.create(sfu.url, sfu.secret)
    try:
        room = f"bench-{uuid.uuid4().hex[:6]}"
        pub_sig = await SignalingClient.connect(inst.ws(room), participant(settings, "pub", room))
        joined = await pub_sig.request("join")
        publisher = MediasoupPeer(pub_sig, joined["routerRtpCapabilities"])
        producer_id = await publisher.publish(ToneTrack())
        router = await client.create_router(room)  # the same router (idempotent per room)

        via_control, via_sfu = [], []
        for i in range(JOINS):
            via_sfu.append(
                await first_audio_via_sfu(
                    client, router.router_id, router.rtp_capabilities, producer_id
                )
            )
            via_control.append(await first_audio_via_control(settings, inst, room, producer_id, i))
        await publisher.close()
        await pub_sig.close()

        single_room = f"bench-{uuid.uuid4().hex[:6]}"
        single = []
        for i in range(SINGLE_JOINS):
            t, sig = await join_only(settings, inst, single_room + str(i), i)
            single.append(t)
            await sig.close()
        crowd_room = f"bench-{uuid.uuid4().hex[:6]}"
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(join_only(settings, inst, crowd_room, i) for i in range(CONCURRENT))
        )
        wall = time.perf_counter() - t0
        events = 0
        await asyncio.sleep(1.0)
        for _, sig in results:
            events += sum(1 for e, _ in sig.events if e == "peerJoined")
            await sig.close()
        return {
            "first_audio_control": stats(via_control),
            "first_audio_sfu_direct": stats(via_sfu),
            "join_single": stats(single),
            "join_concurrent": stats([t for t, _ in results]),
            "concurrent_wall_s": wall,
            "joins_per_s": CONCURRENT / wall,
            "peer_joined_events_delivered": events,
            "peer_joined_events_expected": CONCURRENT * (CONCURRENT - 1) // 2,
        }
    finally:
        await client.close()
        await inst.stop()
        await sfu.stop()
        await redis.stop()


def main() -> None:
    stamp = start_run()
    r = asyncio.run(run())
    fc, fs = r["first_audio_control"], r["first_audio_sfu_direct"]
    js, jc = r["join_single"], r["join_concurrent"]
    assert (
        isinstance(fc, dict)
        and isinstance(fs, dict)
        and isinstance(js, dict)
        and isinstance(jc, dict)
    )
    rows = [
        ("join to first audio, via control plane + signaling", fc),
        ("subscribe to first audio, SFU RPC direct (reference)", fs),
        ("join, one peer into an empty room (reference)", js),
        (f"join, {CONCURRENT} peers at once into one room", jc),
    ]
    table = "| measure | p50 (ms) | p99 (ms) | n |\n| --- | ---: | ---: | ---: |\n"
    for label, m in rows:
        t = {"tail": m["tail_ms"], "tail_of": m["tail_of"], "n": m["n"]}
        table += f"| {label} | {m['p50_ms']:.1f} | {tail_md(t)} | {m['n']} |\n"
    table += (
        f"\nJoin-to-first-audio costs x{fc['p50_ms'] / fs['p50_ms']:.2f} (p50) the direct "
        f"SFU path. {CONCURRENT} concurrent joins took {r['concurrent_wall_s']:.2f} s "
        f"({r['joins_per_s']:.0f} joins/s, p50 x{jc['p50_ms'] / js['p50_ms']:.1f} a lone "
        f"join); `peerJoined` events delivered: {r['peer_joined_events_delivered']} of "
        f"{r['peer_joined_events_expected']} expected. First audio = first decoded Opus "
        "frame in aiortc (so it includes one packet's decode). A tail from fewer than 100 "
        "samples is their max."
    )
    write_result(
        "control_join",
        "Control plane: join latency and signaling throughput",
        r,
        table,
        stamp,
        f"join to first audio x{fc['p50_ms'] / fs['p50_ms']:.2f} the direct SFU path (p50)",
    )
    print(table)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
