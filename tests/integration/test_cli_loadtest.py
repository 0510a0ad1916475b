"""`mediaplane loadtest` against a running `mediaplane up`, both transports."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.cli_system import Running, running_system

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    async with running_system(Path(tmp_path_factory.mktemp("loadtest"))) as run:
        yield run


def loadtest(running: Running, *args: str) -> tuple[int, dict[str, object]]:
    done = running.cli("loadtest", "--json", "--duration", "3", *args)
    assert done.stdout.lstrip().startswith("{"), done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout)


async def test_rtp_rooms_with_subscribers_and_calls(running: Running) -> None:
    rc, r = loadtest(running, "--rooms", "2", "--publishers", "1", "--subscribers", "5")
    log.info(
        "measured: rtp 2 rooms x 1+5: %s",
        {k: r[k] for k in ("loss_pct", "join_ms", "jitter_ms", "cpu_us_per_forwarded_packet")},
    )
    assert rc == 0, r
    assert r["joined"] == 10 and r["join_failures"] == 0 and r["streams"] == 10
    assert r["packets_expected"] == 10 * 150  # 3 s of 20 ms packets per stream
    assert r["loss_pct"] < 1.0 and r["packets_received"] >= 0.99 * 1500
    cpu = r["cpu"]
    assert isinstance(cpu, dict) and cpu["sfu_workers_cpu_s"] is not None

    rc, r = loadtest(running, "--rooms", "3", "--publishers", "3", "--subscribers", "0", "--mesh")
    assert rc == 0, r
    assert r["joined"] == 9 and r["streams"] == 18  # each of 3 receives the other 2


async def test_rtp_counts_late_packets_as_lost(running: Running) -> None:
    """A deadline no packet can meet: every packet is late, the run fails with exit 1."""
    rc, r = loadtest(running, "--subscribers", "3", "--late-ms", "0.001")
    assert rc == 1, r
    assert r["packets_late"] == r["packets_received"] and r["loss_pct"] > 99.0, r


async def test_webrtc_through_the_control_plane(running: Running) -> None:
    rc, r = loadtest(
        running, "--transport", "webrtc", "--rooms", "1", "--publishers", "2", "--subscribers", "2"
    )
    log.info(
        "measured: webrtc 1 room x 2+2: %s", {k: r[k] for k in ("loss_pct", "join_ms", "jitter_ms")}
    )
    assert rc == 0, r
    assert r["joined"] == 2 and r["streams"] == 4 and r["join_failures"] == 0
    assert r["loss_pct"] < 1.0
    expected = r["packets_expected"]
    assert isinstance(expected, int) and expected >= 4 * 140  # about 3 s at 50 pps each


async def test_loadtest_refuses_bad_input(running: Running) -> None:
    done = running.cli("loadtest", "--rooms", "0")
    assert done.returncode == 2 and "rooms" in (done.stdout + done.stderr)
    done = running.cli("loadtest", "--sfu-url", "ws://127.0.0.1:1/rpc", "--duration", "1")
    assert done.returncode == 2 and "is `mediaplane up` running" in done.stdout, done.stdout
