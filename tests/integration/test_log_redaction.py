"""Tokens never reach a log (issue: tokens in logs). `python -m mediaplane.control` at INFO
prints uvicorn's access log; the WebSocket and HLS URLs it logs carry ?access_token=."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer, free_tcp_port
from tests.support.control import admin, participant

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_access_tokens_in_urls_are_redacted_from_the_control_plane_log(
    settings: Settings,
    sfu: SfuProcess,
    redis_server: RedisServer,
    tmp_path: Path,
    log_format: str,
) -> None:
    port = free_tcp_port()
    log_path = tmp_path / "control.log"
    env = {**os.environ, "MEDIAPLANE_ENV": "test", "MEDIAPLANE_REDIS_URL": redis_server.url,
           "MEDIAPLANE_SFU_HOST": "127.0.0.1", "MEDIAPLANE_SFU_PORT": str(sfu.port),
           "MEDIAPLANE_PORT": str(port), "MEDIAPLANE_LOG_LEVEL": "INFO",
           "MEDIAPLANE_LOG_FORMAT": log_format}  # fmt: skip
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mediaplane.control", env=env, stdout=log_file, stderr=log_file
        )
    base = f"http://127.0.0.1:{port}"
    join = participant(settings, "alice", "redact-demo")
    hls = admin(settings)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            async with asyncio.timeout(30):
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    assert proc.returncode is None, log_path.read_text()[-2000:]
                    await asyncio.sleep(0.2)
            url = f"ws://127.0.0.1:{port}/ws/rooms/redact-demo?access_token={join}"
            async with websockets.connect(url) as ws:
                await ws.send('{"id": 1, "method": "nothing", "data": {}}')  # any reply
                await asyncio.wait_for(ws.recv(), 10)
            playlist = "/api/rooms/redact-demo/egress/0123456789abcdef/hls/playlist.m3u8"
            r = await http.get(playlist, params={"access_token": hls})
            assert r.status_code == 404  # no such egress: still logged with its URL
    finally:
        proc.terminate()
        await proc.wait()
    text = log_path.read_text()
    assert "/ws/rooms/redact-demo?access_token=[redacted]" in text, text[-3000:]
    assert "playlist.m3u8?access_token=[redacted]" in text, text[-3000:]
    assert join not in text and hls not in text
    assert join.split(".")[1] not in text  # not even the claims part
