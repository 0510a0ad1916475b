"""`mediaplane up` as an operator runs it: a subprocess of the CLI, driven by the
CLI's own commands, stopped with Ctrl-C (SIGINT) while a recording runs. The
recording must be finished on the way down (EOS, container finalized), not cut."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from mediaplane.peer import MediasoupPeer, PatternVideoTrack, ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from tests.support.cli_system import Running, running_system
from tests.support.control import participant
from tests.support.mediacheck import (
    check_pattern_video,
    decode_audio,
    dominant_frequency,
    probe_streams,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)


async def _decode_errors(path: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 0, err
    # the demuxer's and decoders' complaints; the null muxer's notes on the
    # recorder's timestamps (repeated video dts at the start) are not about damage
    # ("Last message repeated N times" after one of those notes is that note again)
    kept: list[str] = []
    dropped = False
    for line in err.decode(errors="replace").splitlines():
        repeat = line.strip().startswith("Last message repeated")
        dropped = line.startswith("[null @") or (repeat and dropped)
        if not dropped:
            kept.append(line)
    return "\n".join(kept)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_system(tmp_path) as run:
        yield run


async def test_cli_commands_and_ctrl_c_finishes_the_recording(running: Running) -> None:
    settings = Settings(env="test")
    room = "cli-demo"
    # up's progress and its status table at the end (printed once everything answers)
    async with asyncio.timeout(15):
        while True:
            shown = running.output()
            if f"mediaplane at {running.url}" in shown:
                break
            await asyncio.sleep(0.2)
    assert f"mediaplane at {running.url}" in shown, shown
    for row in ("control plane", "redis", "sfu", "worker", "Ctrl-C", f"{running.url}/admin"):
        assert row in shown, (row, shown)
    assert shown.count("✓") >= 4, shown  # one line per service that came up
    config = await running.acli("config")
    assert config.returncode == 0 and '"api_key"' in config.stdout, config.stdout
    assert settings.secret("api_secret") not in config.stdout  # secrets are hidden
    made = await running.acli("rooms", "create", room, "--metadata", "from the CLI", "--json")
    assert made.returncode == 0, made.stderr + made.stdout
    assert json.loads(made.stdout)["name"] == room
    dup = await running.acli("rooms", "create", room)
    assert dup.returncode == 1 and "409" in dup.stdout and "exists" in dup.stdout, dup.stdout

    ws = f"ws://127.0.0.1:{running.env['MEDIAPLANE_PORT']}/ws/rooms/{room}"
    sig = await SignalingClient.connect(ws, participant(settings, "alice", room))
    joined = await sig.request("join")
    peer = MediasoupPeer(sig, joined["routerRtpCapabilities"])
    await peer.publish(ToneTrack(freq=440.0))
    await peer.publish(PatternVideoTrack())
    try:
        people = json.loads((await running.acli("rooms", "participants", room, "--json")).stdout)
        assert [p["identity"] for p in people] == ["alice"]
        assert sorted(t["kind"] for t in people[0]["tracks"]) == ["audio", "video"]
        status = await running.acli("status")
        assert status.returncode == 0, status.stdout
        assert "cli-demo" in status.stdout and "worker" in status.stdout

        # A short, audio-only recording stopped from the CLI: completed, and it decodes.
        short = await running.acli(
            "record", "start", room, "--identity", "alice", "--no-video", "--json"
        )
        assert short.returncode == 0, short.stdout + short.stderr
        short_rec = json.loads(short.stdout)
        await asyncio.sleep(2.0)
        done = await running.acli("record", "stop", room, short_rec["id"], "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        short_rec = json.loads(done.stdout)
        assert short_rec["state"] == "completed", short_rec
        short_pcm = decode_audio(running.data_dir / "recordings" / short_rec["file"])
        assert abs(dominant_frequency(short_pcm[12000:-12000], 48000) - 440.0) <= 5.0
        again = await running.acli("record", "stop", room, short_rec["id"])
        assert again.returncode == 1 and "409" in again.stdout, again.stdout

        started = await running.acli("record", "start", room, "--identity", "alice", "--json")
        assert started.returncode == 0, started.stdout + started.stderr
        rec: dict[str, Any] = json.loads(started.stdout)
        assert rec["state"] == "running", rec
        listed = json.loads((await running.acli("record", "list", "--room", room, "--json")).stdout)
        assert sorted(r["id"] for r in listed) == sorted([rec["id"], short_rec["id"]])

        # A token minted by the CLI joins; `rooms kick` removes that participant.
        minted = await running.acli("token", "--identity", "bob", "--room", room)
        assert minted.returncode == 0, minted.stderr
        bob = await SignalingClient.connect(ws, minted.stdout.strip())
        await bob.request("join")
        rooms = json.loads((await running.acli("rooms", "list", "--json")).stdout)
        assert {r["name"]: r["num_participants"] for r in rooms}.get(room) == 2, rooms
        kicked = await running.acli("rooms", "kick", room, "bob")
        assert kicked.returncode == 0, kicked.stdout + kicked.stderr
        assert await bob.wait_closed() == 4003
        assert (await running.acli("token", "--identity", "x")).returncode == 2  # no --room
        # An invitation: the call page's link carrying a participant token (open join is off).
        invite = await running.acli("token", "--identity", "carol", "--room", room, "--link")
        link = urlsplit(invite.stdout.strip())
        assert f"{link.scheme}://{link.netloc}" == running.url, invite.stdout
        query = parse_qs(link.query)
        assert (query["room"], query["name"]) == ([room], ["carol"]), query
        carol = await SignalingClient.connect(ws, query["token"][0])
        await carol.request("join")
        await carol.close()
        no_room = await running.acli("token", "--identity", "x", "--admin", "--link")
        assert no_room.returncode == 2 and "--link needs --room" in no_room.stderr, no_room.stderr
        # `rooms delete`, then the room is gone.
        assert (await running.acli("rooms", "create", "cli-gone")).returncode == 0
        gone = await running.acli("rooms", "delete", "cli-gone")
        assert gone.returncode == 0 and "deleted" in gone.stdout, gone.stdout
        names = [
            r["name"] for r in json.loads((await running.acli("rooms", "list", "--json")).stdout)
        ]
        assert "cli-gone" not in names and room in names, names

        await asyncio.sleep(6.0)  # the recording under test
        sigint_at = time.time()
        running.proc.send_signal(signal.SIGINT)
        rc = await asyncio.wait_for(running.proc.wait(), 90)
        stopped_in = time.time() - sigint_at
    finally:
        await peer.close()
        await sig.close()
    output = running.output()
    assert rc == 0, output
    assert f"recording {rec['id']}" in output and "completed" in output, output
    assert "stopped (1 recording(s)" in output, output

    span = sigint_at - rec["started_at"]
    path = running.data_dir / "recordings" / rec["file"]
    streams = {s.codec_type: s for s in probe_streams(path, count_frames=True)}
    errors = await _decode_errors(path)
    pcm = decode_audio(path)
    decoded = len(pcm) / 48000
    # the file's timeline starts at its first written packet's running time; its end
    # is where the recorder got EOS (CLI calls run off the loop: the publisher here
    # keeps sending while they do)
    audio_start = streams["audio"].start_time or 0.0
    timeline_end = audio_start + decoded
    freq = dominant_frequency(pcm[24000:-24000], 48000)
    log.info(
        "measured: SIGINT to exit %.2f s; recording decoded %.3f s (timeline %.3f..%.3f s) "
        "for %.3f s between its first packet and SIGINT; %.1f Hz; %s video frames",
        stopped_in, decoded, audio_start, timeline_end, span, freq, streams["video"].frames,
    )  # fmt: skip
    assert errors == "", errors  # every packet demuxes and decodes: no torn block at the end
    # not cut: the content runs up to the signal (the recorder got EOS after it)
    assert abs(timeline_end - span) <= 0.5, (timeline_end, span)
    assert abs(decoded - span) <= 0.5, (decoded, span)
    assert abs(freq - 440.0) <= 5.0
    assert streams["video"].frames is not None and streams["video"].frames >= 5 * 10
    pattern = check_pattern_video(path)  # the frames are the pattern sent, in order
    log.info("measured: pattern %d decoded, bar %.2f", len(pattern.numbers), pattern.bar_share)
    assert len(pattern.numbers) >= 5 * 10 and pattern.in_order, pattern.numbers[:40]
    assert pattern.bar_share >= 0.9 and pattern.background_share >= 0.9, pattern
    assert stopped_in < 60
