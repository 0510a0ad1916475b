"""/metrics of every service, scraped while a participant joins, publishes, is
heard by a subscriber and is recorded: the counters must move with each step.
Everything is real (SFU + worker, Redis, control plane, media manager,
GStreamer, aiortc); the heard audio and the recording are decoded."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from mediaplane.peer import MediasoupPeer, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import REPO_ROOT, Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.support.control import ControlInstance, participant
from tests.support.loss import drop_udp_to
from tests.support.mediacheck import collect_track_audio, decode_audio, dominant_frequency
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

Labels = frozenset[tuple[str, str]]
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "mediaplane.json"


class Scrape:
    """One scrape: every sample by (name, labels), and the metric family names."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, Labels], float] = {}
        self.families: set[str] = set()
        for family in text_string_to_metric_families(text):
            self.families.add(family.name)
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def get(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum over every series of `name` whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def names(self) -> Iterator[str]:
        yield from self.families
        for name, _ in self.samples:
            yield name


async def scrape(http: httpx.AsyncClient, url: str) -> Scrape:
    r = await http.get(f"{url}/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return Scrape(r.text)


async def scrape_all(http: httpx.AsyncClient, stack: Stack, sfu: SfuProcess) -> list[Scrape]:
    return list(
        await asyncio.gather(
            scrape(http, stack.control.http),
            scrape(http, sfu.http_url),
            scrape(http, stack.media.url),
        )
    )


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.total(name, **labels) - before.total(name, **labels)


async def wait_rec(http: httpx.AsyncClient, room: str, rec_id: str, states: set[str]) -> dict:
    async with asyncio.timeout(20):
        while True:
            rec: dict = (await http.get(f"/api/rooms/{room}/recordings/{rec_id}")).json()
            if rec["state"] in states:
                return rec
            await asyncio.sleep(0.1)


async def test_counters_move_with_join_publish_and_recording(
    stack: Stack, sfu: SfuProcess, tmp_path: Path
) -> None:
    room = f"met-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        for url in (stack.control.http, sfu.http_url, stack.media.url):
            assert (await http.get(f"{url}/healthz")).status_code == 200, url
        c0, s0, _ = await scrape_all(http, stack, sfu)

        # join + publish (one audio track at 440 Hz)
        sig = await SignalingClient.connect(
            stack.control.ws(room), participant(stack.settings, "alice", room)
        )
        joined = await sig.request("join")
        peer = MediasoupPeer(sig, joined["routerRtpCapabilities"])
        producer_id = await peer.publish(ToneTrack(freq=440.0))
        # a subscriber, so the SFU forwards (out direction) and we hear what flows
        sig2 = await SignalingClient.connect(
            stack.control.ws(room), participant(stack.settings, "bob", room)
        )
        joined2 = await sig2.request("join")
        peer2 = MediasoupPeer(sig2, joined2["routerRtpCapabilities"])
        try:
            _, track = await peer2.subscribe(producer_id)
            heard = await collect_track_audio(track, 3.0)
            c1, s1, m1 = await scrape_all(http, stack, sfu)
            await asyncio.sleep(2.0)
            _, s2, _ = await scrape_all(http, stack, sfu)

            # record alice (audio), 3 s
            async with stack.http() as api:
                r = await api.post(
                    f"/api/rooms/{room}/recordings", json={"identity": "alice", "video": False}
                )
                assert r.status_code == 202, r.text
                rec_id = r.json()["id"]
                await wait_rec(api, room, rec_id, {"running"})
                c_rec, _, m_rec = await scrape_all(http, stack, sfu)
                await asyncio.sleep(3.0)
                done = (await api.post(f"/api/rooms/{room}/recordings/{rec_id}/stop")).json()
                assert done["state"] == "completed", done
                await stack.hooks.wait_for("recording.finished", lambda d: d["id"] == rec_id)
                c2, _, m2 = await scrape_all(http, stack, sfu)
        finally:
            await peer2.close()
            await sig2.close()
            await peer.close()
            await sig.close()
        # the two signaling sockets are counted when they end
        ws_route = {"route": "/ws/rooms/{room}"}
        async with asyncio.timeout(10):
            while True:
                c3 = await scrape(http, stack.control.http)
                if moved(c0, c3, "mediaplane_control_websocket_connections_total", **ws_route) >= 2:
                    break
                await asyncio.sleep(0.2)
        left = moved(c0, c3, "mediaplane_control_events_total", event="participant.left")
        assert left == 2 and c3.get("mediaplane_control_participants", scope="instance") == 0

    freq = dominant_frequency(heard[4800:], 48000)
    pcm = decode_audio(stack.media.root / done["file"])
    rec_freq = dominant_frequency(pcm[4800:-4800], 48000)
    log.info(
        "measured: subscriber heard %.1f Hz, recording %.3f s at %.1f Hz",
        freq,
        len(pcm) / 48000,
        rec_freq,
    )
    assert abs(freq - 440.0) <= 5.0 and abs(rec_freq - 440.0) <= 5.0

    # control plane: the joins, the publish, the subscription, the recording
    joins = moved(c0, c1, "mediaplane_control_events_total", event="participant.joined")
    published = moved(c0, c1, "mediaplane_control_tracks_published_total", kind="audio")
    subscribed = moved(c0, c1, "mediaplane_control_tracks_subscribed_total", kind="audio")
    rpc_produce = moved(
        c0,
        c1,
        "mediaplane_control_sfu_rpc_requests_total",
        method="transport.produce",
        outcome="ok",
    )
    rec_started = moved(c1, c_rec, "mediaplane_control_events_total", event="recording.started")
    rec_finished = moved(c1, c2, "mediaplane_control_events_total", event="recording.finished")
    delivered = moved(c1, c2, "mediaplane_control_webhook_deliveries_total", outcome="delivered")
    log.info(
        "measured: control joins +%d, published +%d, subscribed +%d, produce RPCs +%d, "
        "participants on instance %d, recording.started +%d, recording.finished +%d, "
        "webhooks delivered +%d, recordings active during %d",
        joins,
        published,
        subscribed,
        rpc_produce,
        c1.get("mediaplane_control_participants", scope="instance"),
        rec_started,
        rec_finished,
        delivered,
        c_rec.get("mediaplane_control_recordings_active"),
    )
    assert joins == 2 and published == 1 and subscribed == 1 and rpc_produce == 1
    assert c1.get("mediaplane_control_participants", scope="instance") >= 2
    assert c1.get("mediaplane_control_participants", scope="cluster") >= 2
    assert c1.get("mediaplane_control_rooms", scope="cluster") >= 1
    assert rec_started == 1 and rec_finished == 1 and delivered >= 2
    assert c_rec.get("mediaplane_control_recordings_active") >= 1
    assert moved(c0, c1, "mediaplane_control_http_requests_total") >= 1  # the scrapes themselves
    assert (
        moved(
            c1,
            c2,
            "mediaplane_control_http_requests_total",
            route="/api/rooms/{room}/recordings",
            status="202",
        )
        == 1
    )

    # SFU: objects, RPCs, packets in and out, CPU
    packets_in = moved(s1, s2, "mediaplane_sfu_rtp_packets_total", direction="in", kind="audio")
    packets_out = moved(s1, s2, "mediaplane_sfu_rtp_packets_total", direction="out", kind="audio")
    cpu = moved(s1, s2, "mediaplane_sfu_worker_cpu_seconds_total")
    log.info(
        "measured: SFU over 2 s: %d audio packets in, %d out, worker CPU %.3f s, bitrate in "
        "%.0f bps, out %.0f bps, produce RPCs +%d, stats scrape %.4f s",
        packets_in,
        packets_out,
        cpu,
        s2.get("mediaplane_sfu_bitrate_bps", direction="in", kind="audio"),
        s2.get("mediaplane_sfu_bitrate_bps", direction="out", kind="audio"),
        moved(
            s0, s1, "mediaplane_sfu_rpc_requests_total", method="transport.produce", outcome="ok"
        ),
        s2.get("mediaplane_sfu_stats_scrape_seconds"),
    )
    assert (
        moved(s0, s1, "mediaplane_sfu_rpc_requests_total", method="transport.produce", outcome="ok")
        == 1
    )
    assert moved(s0, s1, "mediaplane_sfu_rpc_duration_seconds_count", method="router.create") >= 1
    assert s1.get("mediaplane_sfu_tracks", type="producer", kind="audio") >= 1
    assert s1.get("mediaplane_sfu_tracks", type="consumer", kind="audio") >= 1
    assert 50 <= packets_in <= 200 and 50 <= packets_out <= 200  # 20 ms Opus frames over ~2 s
    assert s2.get("mediaplane_sfu_bitrate_bps", direction="in", kind="audio") > 0
    assert cpu > 0
    assert s2.get("mediaplane_sfu_workers") == 2

    # media manager: one record job through its states, its duration, first packet, CPU
    admitted = moved(
        m1, m2, "mediaplane_media_job_transitions_total", kind="record", state="pending"
    )
    completed = moved(
        m1, m2, "mediaplane_media_job_transitions_total", kind="record", state="completed"
    )
    durations = moved(
        m1, m2, "mediaplane_media_job_duration_seconds_count", kind="record", state="completed"
    )
    first = moved(m1, m2, "mediaplane_media_job_time_to_first_packet_seconds_count", kind="record")
    worker_cpu = moved(m1, m2, "mediaplane_media_worker_cpu_seconds_total")
    log.info(
        "measured: media record admitted +%d, completed +%d, durations +%d, first packet +%d, "
        "running during %d, worker CPU +%.3f s, live packets received during %d",
        admitted,
        completed,
        durations,
        first,
        m_rec.get("mediaplane_media_jobs", kind="record", state="running"),
        worker_cpu,
        m_rec.get("mediaplane_media_live_packets_received", kind="record"),
    )
    assert admitted == 1 and completed == 1 and durations == 1 and first == 1
    assert m_rec.get("mediaplane_media_jobs", kind="record", state="running") >= 1
    assert m_rec.get("mediaplane_media_budget_units", which="used") >= 1
    assert worker_cpu > 0

    # The Grafana dashboard only queries metrics that exist.
    exposed = set(c2.names()) | set(s2.names()) | set(m2.names())
    queried = dashboard_metrics()
    missing = sorted(m for m in queried if m not in exposed and m != "up")
    log.info("measured: dashboard queries %d metrics, all exposed: %s", len(queried), not missing)
    assert not missing, missing


def dashboard_metrics() -> set[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b(?=\s*[{\[)])", " ".join(exprs)))
    functions = {"rate", "sum", "max", "min", "histogram_quantile", "increase", "deriv", "by"}
    return {w for w in words if w not in functions and "_" in w}


async def test_sfu_counts_packets_lost_on_the_way_in(stack: Stack, sfu: SfuProcess) -> None:
    """Real loss between a publisher and the SFU (nft drops every packet to the SFU's
    send transport for 0.5 s): the SFU's lost counter for audio moves by what was lost
    (Opus is not retransmitted: 50 packets/s, so about 25)."""
    room = f"met-{uuid.uuid4().hex[:6]}"
    sig = await SignalingClient.connect(
        stack.control.ws(room), participant(stack.settings, "lossy", room)
    )
    joined = await sig.request("join")
    peer = MediasoupPeer(sig, joined["routerRtpCapabilities"])
    try:
        await peer.publish(ToneTrack(freq=440.0))
        assert peer.send_transport is not None
        candidates = peer.send_transport["iceCandidates"]
        ports = {c["port"] for c in candidates if c["protocol"] == "udp"}
        assert len(ports) == 1, ports
        async with httpx.AsyncClient(timeout=30) as http:
            await asyncio.sleep(2.0)
            before = (await scrape(http, sfu.http_url)).total(
                "mediaplane_sfu_rtp_packets_lost_total", direction="in", kind="audio"
            )
            with drop_udp_to(ports.pop()) as dropped:
                await asyncio.sleep(0.5)
            moved, worst = 0.0, 0.0
            async with asyncio.timeout(10):
                while moved < 15:  # the producer's stats follow within a second or so
                    await asyncio.sleep(0.5)
                    after = await scrape(http, sfu.http_url)
                    moved = (
                        after.total(
                            "mediaplane_sfu_rtp_packets_lost_total", direction="in", kind="audio"
                        )
                        - before
                    )
                    worst = max(worst, after.get(
                        "mediaplane_sfu_fraction_lost_max", direction="in", kind="audio"
                    ))  # fmt: skip
    finally:
        await peer.close()
        await sig.close()
    log.info("measured: SFU in: %d sends dropped, lost counter +%d, worst fraction lost %.3f",
             dropped.packets, moved, worst)  # fmt: skip
    assert 15 <= moved <= 30, moved
    assert dropped.packets >= moved, (dropped.packets, moved)


async def test_metrics_token_is_required_when_set(
    settings: Settings, sfu: SfuProcess, redis_server: RedisServer
) -> None:
    locked = settings.model_copy(update={"metrics_token": SecretStr("metrics-token-for-test")})
    async with (
        ControlInstance.running(locked, sfu_url=sfu.url, redis_url=redis_server.url) as c,
        httpx.AsyncClient(base_url=c.http) as http,
    ):
        refused = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        ok = await http.get("/metrics", headers={"Authorization": "Bearer metrics-token-for-test"})
    assert refused.status_code == 401 and wrong.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert ok.status_code == 200 and "mediaplane_control_rooms" in ok.text
