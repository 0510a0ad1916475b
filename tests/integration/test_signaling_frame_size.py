"""Signaling frames over the protocol's limit are refused before they are read (issue 17
item 5). Found: frames up to 16 MiB (uvicorn's default) were read whole before the 64 KiB
check; 8 parallel 16 MiB frames took the control plane from 169 to 423 MiB. Now the
WebSocket server's own limit is the protocol's: such a frame closes the socket with 1009,
the process does not grow, and a normal participant is served afterwards."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.support.control import ControlInstance, control_process, participant

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

MiB = 1024 * 1024


async def oversize_close(url: str, size: int) -> int | None:
    """Send one text frame of `size` bytes; the close code the server answers with."""
    ws = await connect(url, open_timeout=5, close_timeout=5)
    try:
        await ws.send('{"id": 1, "method": "join", "data": {"displayName": "' + "x" * size + '"}}')
        await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed:
        pass
    finally:
        await ws.close()
    return ws.close_code


async def served(url: str, token: str) -> None:
    sig = await SignalingClient.connect(url, token)
    try:
        joined = await sig.request("join", {"displayName": "Alice"})
        assert joined["peerId"]
    finally:
        await sig.close()


async def test_oversize_frames_close_1009_without_the_process_growing(
    settings: Settings, sfu: SfuProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    room = f"big-{uuid.uuid4().hex[:6]}"
    async with control_process(sfu.port, redis_server.url, tmp_path / "control.log") as control:
        url = f"{control.ws(room)}?access_token={participant(settings, 'mallory', room)}"
        await served(control.ws(room), participant(settings, "warmup", room))
        # The peak (VmHWM), not the resident size after: what was read is freed again.
        before, peak_before = control.memory(), control.memory("VmHWM")
        codes = await asyncio.gather(*(oversize_close(url, 16 * MiB - 100) for _ in range(8)))
        peak = control.memory("VmHWM")
        grown = (peak - max(before, peak_before)) / MiB
        log.info("measured: control RSS %.1f MiB, peak %.1f -> %.1f MiB (+%.1f) over 8 "
                 "parallel 16 MiB frames", before / MiB, peak_before / MiB, peak / MiB,
                 grown)  # fmt: skip
        assert codes == [1009] * 8, codes
        assert grown < 16, f"the control plane's peak grew by {grown:.1f} MiB"
        await served(control.ws(room), participant(settings, "alice", room))


async def test_the_limit_is_the_protocols_exactly(
    settings: Settings, control: ControlInstance
) -> None:
    """The in-process instance the tests use is configured the same way: a frame at the
    limit is read (and answered), one byte over it closes the socket."""
    room = f"edge-{uuid.uuid4().hex[:6]}"
    limit = settings.signaling_max_message_bytes
    url = f"{control.ws(room)}?access_token={participant(settings, 'edge', room)}"
    at_limit = '{"id": 1, "method": "nothing", "data": {"pad": "' + "x" * limit
    at_limit = at_limit[: limit - 3] + '"}}'  # exactly `limit` bytes, still a request
    assert len(at_limit.encode()) == limit
    async with connect(url, open_timeout=5) as ws:
        await ws.send(at_limit)
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (reply["id"], reply["error"]["code"]) == (1, "unknown_method"), reply
        await ws.send("x" * (limit + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    await served(control.ws(room), participant(settings, "alice", room))
