"""`mediaplane up` as an operator runs it: a subprocess of the CLI on free ports."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
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


def trust(cert_file: Path) -> ssl.SSLContext:
    """A client context that trusts exactly this (self-signed) certificate."""
    ctx = ssl.create_default_context(cafile=str(cert_file))
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


@asynccontextmanager
async def running_system(
    tmp_path: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Running]:
    """`extra_env` with MEDIAPLANE_TLS=on: the system is reached over https, trusting the
    certificate `up` made (or reused) in <data_dir>/tls."""
    port = free_tcp_port()
    tls = (extra_env or {}).get("MEDIAPLANE_TLS") == "on"
    scheme = "https" if tls else "http"
    env = {
        **os.environ,
        "MEDIAPLANE_ENV": "test",
        "MEDIAPLANE_DATA_DIR": str(tmp_path / "data"),
        "MEDIAPLANE_PORT": str(port),
        "MEDIAPLANE_SFU_PORT": str(free_tcp_port()),
        "MEDIAPLANE_MEDIA_PORT": str(free_tcp_port()),
        "MEDIAPLANE_SFU_NUM_WORKERS": "1",
        "MEDIAPLANE_URL": f"{scheme}://127.0.0.1:{port}",
        "COLUMNS": "200",
        **(extra_env or {}),
    }
    env.pop("MEDIAPLANE_REDIS_URL", None)
    out = tmp_path / "up.out"
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mediaplane.cli", "up", env=env, stdout=sink, stderr=sink
        )
    run = Running(proc, env, f"{scheme}://127.0.0.1:{port}", tmp_path / "data", out)
    cert_file = run.data_dir / "tls" / "cert.pem"
    try:
        async with asyncio.timeout(90):
            while True:
                assert proc.returncode is None, run.output()
                try:
                    verify = trust(cert_file) if tls else True
                    async with httpx.AsyncClient(verify=verify) as http:
                        if (await http.get(f"{run.url}/readyz")).status_code == 200:
                            break
                except (httpx.TransportError, OSError, ssl.SSLError):
                    pass  # not listening yet, or its certificate not written yet
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
