"""Recording start latency and time to first video frame, through the whole stack.

20 recordings of an aiortc publisher (tone + pattern video; aiortc's VP8
encoder only makes key frames on request after the first). For each: REST
call -> first packet written by the recorder (start latency), and the
first decoded video frame's offset from the first audio sample in the file
(that offset stays near 0: no key-frame wait). Reference in the same run: the media manager's
own time from its start request to the first packet, for a GStreamer sender
already streaming (the floor without SFU, plain transports or signaling).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from tests.support.control import ControlInstance, admin, participant
from tests.support.gst import GstProcess, opus_sender
from tests.support.media import OPUS, SECRET, MediaService
from tests.support.mediacheck import probe_streams

from benchmarks.common import percentile, start_run, tail, tail_md, write_result
from mediaplane.peer import MediasoupPeer, PatternVideoTrack, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer

N = 20


async def wait_state(http: httpx.AsyncClient, path: str, state: str) -> dict[str, object]:
    async with asyncio.timeout(20):
        while True:
            body: dict[str, object] = (await http.get(path)).json()
            if body["state"] == state:
                return body
            await asyncio.sleep(0.05)


async def run() -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp())
    redis = await RedisServer.start(tmp / "redis", persist=False)
    sfu = await SfuProcess.start(Settings(env="test"), port=0, num_workers=1)
    media = await MediaService.start(tmp / "data")
    settings = Settings(
        env="test", data_dir=tmp / "data", media_port=media.port, media_secret=SECRET
    )
    control = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis.url)
    try:
        room = f"bench-{uuid.uuid4().hex[:6]}"
        sig = await SignalingClient.connect(control.ws(room), participant(settings, "pub", room))
        joined = await sig.request("join")
        peer = MediasoupPeer(sig, joined["routerRtpCapabilities"])
        await peer.publish(ToneTrack())
        await peer.publish(PatternVideoTrack())
        await asyncio.sleep(2.0)  # the publisher is past its first key frame
        latency, ttff = [], []
        auth = {"Authorization": f"Bearer {admin(settings)}"}
        async with httpx.AsyncClient(base_url=control.http, headers=auth, timeout=60) as http:
            for _ in range(N):
                t0 = time.time()
                rec = (
                    await http.post(f"/api/rooms/{room}/recordings", json={"identity": "pub"})
                ).json()
                path = f"/api/rooms/{room}/recordings/{rec['id']}"
                started = await wait_state(http, path, "recording")
                await asyncio.sleep(2.0)
                done = (await http.post(f"{path}/stop")).json()
                latency.append(float(started["started_at"]) - t0)  # type: ignore[arg-type]
                streams = {
                    s.codec_type: s for s in probe_streams(tmp / "data/recordings" / done["file"])
                }
                a, v = streams["audio"].start_time or 0.0, streams["video"].start_time or 0.0
                ttff.append(float(started["started_at"]) - t0 + max(0.0, v - a))  # type: ignore[arg-type]
        await peer.close()
        await sig.close()

        reference = []
        async with media.client() as http:
            for i in range(N):
                job = (
                    await http.post("/recordings", json={"filePath": f"ref/{i}", "audio": OPUS})
                ).json()
                port = job["rtp"]["audio"]["port"]
                tx = await GstProcess.start(
                    *opus_sender(port, freq=440, seconds=1.0, pt=100, ssrc=1)
                )
                await tx.wait(30)
                done = (await http.post(f"/jobs/{job['id']}/stop")).json()
                reference.append(float(done["time_to_first_packet_s"]))
        return {
            "start_latency_s": latency,
            "time_to_first_video_frame_s": ttff,
            "reference_s": reference,
        }
    finally:
        await control.stop()
        await media.stop()
        await sfu.stop()
        await redis.stop()


def main() -> None:
    stamp = start_run()
    r = asyncio.run(run())
    rows = []
    for label, key in (
        ("REST call -> first packet written (start latency)", "start_latency_s"),
        ("REST call -> first video packet written", "time_to_first_video_frame_s"),
        ("reference: media manager alone, start request -> first packet", "reference_s"),
    ):
        samples = r[key]
        assert isinstance(samples, list)
        t = tail(samples)
        rows.append(f"| {label} | {1000 * t['p50']:.0f} | {tail_md(t, '.0f', 1000)} | {t['n']} |")
    lat, ref = r["start_latency_s"], r["reference_s"]
    assert isinstance(lat, list) and isinstance(ref, list)
    ratio = percentile(lat, 50) / percentile(ref, 50)
    table = (
        "| measure | p50 (ms) | p99 (ms) | n |\n| --- | ---: | ---: | ---: |\n"
        + "\n".join(rows)
        + f"\n\nStart latency through the whole stack is x{ratio:.2f} (p50) the media "
        "manager's own start. The reference includes the GStreamer sender's own start, "
        "so it is an upper bound of the recorder's share. A tail from fewer than 100 samples "
        "is their max."
    )
    write_result(
        "recording_start",
        "Recording: start latency and time to first video frame",
        r,
        table,
        stamp,
        f"start latency x{ratio:.2f} the media manager's own start (p50)",
    )
    print(table)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
