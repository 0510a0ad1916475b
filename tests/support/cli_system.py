"""`mediaplane up` as an operator runs it: a subprocess of the CLI on free ports."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from mediaplane.state.redis_server import free_tcp_port


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    env: dict[str, str]
    url: str
    data_dir: Path
    out: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mediaplane.cli", *args],
            env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    async def acli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`cli` off the event loop: in-process peers keep sending meanwhile."""
        return await asyncio.to_thread(self.cli, *args)

    def output(self) -> str:
        return self.out.read_text(errors="replace")


@asynccontextmanager
async def running_system(tmp_path: Path) -> AsyncIterator[Running]:
    port = free_tcp_port()
    env = {
        **os.environ,
        "MEDIAPLANE_ENV": "test",
        "MEDIAPLANE_DATA_DIR": str(tmp_path / "data"),
        "MEDIAPLANE_PORT": str(port),
        "MEDIAPLANE_SFU_PORT": str(free_tcp_port()),
        "MEDIAPLANE_MEDIA_PORT": str(free_tcp_port()),
        "MEDIAPLANE_SFU_NUM_WORKERS": "1",
        "MEDIAPLANE_URL": f"http://127.0.0.1:{port}",
        "COLUMNS": "200",
    }
    env.pop("MEDIAPLANE_REDIS_URL", None)
    out = tmp_path / "up.out"
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mediaplane.cli", "up", env=env, stdout=sink, stderr=sink
        )
    run = Running(proc, env, f"http://127.0.0.1:{port}", tmp_path / "data", out)
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(90):
            while True:
                assert proc.returncode is None, run.output()
                try:
                    if (await http.get(f"{run.url}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.3)
        yield run
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 90)
            except TimeoutError:
                proc.kill()
                await proc.wait()
