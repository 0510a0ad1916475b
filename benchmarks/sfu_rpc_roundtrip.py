"""RPC round trip of cheap SFU calls through the Python client, against the same
calls made in-process in Node (sfu/bench/rpc_inprocess.mjs), in one run.

The ratio p50(Python over WebSocket) / p50(Node in-process) is the price of
putting the control plane in another process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

from benchmarks.common import ROOT, percentile, start_run, write_result
from mediaplane.settings import Settings
from mediaplane.sfu import SfuClient, SfuProcess
from mediaplane.sfu.process import node_binary, worker_binary

ITERATIONS = int(os.environ.get("BENCH_ITERATIONS", "2000"))


async def measure(call: object) -> dict[str, float]:
    fn = call  # an async callable
    for _ in range(100):
        await fn()  # type: ignore[operator]
    samples = []
    for _ in range(ITERATIONS):
        t0 = time.perf_counter_ns()
        await fn()  # type: ignore[operator]
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    return {
        "p50_us": percentile(samples, 50),
        "p99_us": percentile(samples, 99),
        "n": len(samples),
    }


async def python_side(settings: Settings) -> dict[str, dict[str, float]]:
    sfu = await SfuProcess.start(settings, port=0, num_workers=1)
    client = await SfuClient.create(sfu.url, sfu.secret)
    try:
        router = await client.create_router("bench-rpc")
        t = await client.create_plain_transport(router.router_id)
        return {
            "transport.getStats": await measure(
                lambda: client.get_stats("transport", t.transport_id)
            ),
            "server.stats": await measure(client.server_stats),
        }
    finally:
        await client.close()
        await sfu.stop()


def node_side(settings: Settings) -> dict[str, dict[str, float]]:
    env = dict(os.environ, MEDIASOUP_WORKER_BIN=str(worker_binary(settings)))
    out = subprocess.run(
        [str(node_binary()), str(ROOT / "sfu/bench/rpc_inprocess.mjs"), str(ITERATIONS)],
        cwd=ROOT / "sfu",
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    result: dict[str, dict[str, float]] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    stamp = start_run()
    settings = Settings(env="test")
    node = node_side(settings)
    py = asyncio.run(python_side(settings))
    ref = node["transport.getStats"]
    got = py["transport.getStats"]
    ratio_p50 = got["p50_us"] / ref["p50_us"]
    ratio_p99 = got["p99_us"] / ref["p99_us"]
    data = {
        "iterations": ITERATIONS,
        "node_inprocess": node,
        "python_rpc": py,
        "ratio_p50": ratio_p50,
        "ratio_p99": ratio_p99,
    }
    sv = py["server.stats"]
    rows = [
        ("transport.getStats", "Node in-process (reference)", ref),
        ("transport.getStats", "Python client -> WebSocket RPC -> Node", got),
        ("server.stats (no worker hop)", "Python client -> WebSocket RPC -> Node", sv),
    ]
    table = "| call | path | p50 (µs) | p99 (µs) |\n| --- | --- | ---: | ---: |\n"
    for call, path_name, r in rows:
        table += f"| {call} | {path_name} | {r['p50_us']:.1f} | {r['p99_us']:.1f} |\n"
    table += (
        f"\nRatio Python RPC / Node in-process for transport.getStats: **p50 x{ratio_p50:.1f}, "
        f"p99 x{ratio_p99:.1f}** ({ITERATIONS} sequential calls each, after 100 warm-up calls)."
    )
    path = write_result(
        "sfu_rpc_roundtrip",
        "SFU RPC round trip",
        data,
        table,
        stamp,
        f"Python RPC x{ratio_p50:.1f} (p50) Node in-process for transport.getStats",
    )
    print(table)
    print(f"written {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
