"""The media manager as a real separate process, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from mediaplane.state.redis_server import free_tcp_port

SECRET = "test-media-secret"
# The test sources and RTMP servers run on loopback, which the outbound guard refuses
# unless allowed (docs/security.md#ssrf): fixtures that need them say so explicitly.
LOOPBACK_OUTBOUND = ["127.0.0.0/8", "::1/128"]


@dataclass
class MediaService:
    proc: asyncio.subprocess.Process
    port: int
    data_dir: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def root(self) -> Path:
        return self.data_dir / "recordings"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {SECRET}"}, timeout=60
        )

    @classmethod
    async def start(
        cls,
        data_dir: Path,
        *,
        budget: float = 100.0,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> MediaService:
        """`host`: where it listens for REST and RTP (a netns bridge address, multi-node)."""
        port = port or free_tcp_port(host)
        env = {
            **os.environ,
            "MEDIAPLANE_ENV": "test",
            "MEDIAPLANE_DATA_DIR": str(data_dir),
            "MEDIAPLANE_MEDIA_PORT": str(port),
            "MEDIAPLANE_MEDIA_SECRET": SECRET,
            "MEDIAPLANE_MEDIA_CPU_BUDGET": str(budget),
            "MEDIAPLANE_MEDIA_STALL_TIMEOUT_S": "2",
            "MEDIAPLANE_MEDIA_HOST": host,
            "MEDIAPLANE_MEDIA_RTP_IP": host,
            "MEDIAPLANE_OUTBOUND_ALLOW": json.dumps(LOOPBACK_OUTBOUND),
            **(extra_env or {}),
        }
        log = None if os.environ.get("MP_TEST_MEDIA_LOG") else asyncio.subprocess.DEVNULL
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mediaplane.media", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        service = cls(proc, port, data_dir, host)
        async with httpx.AsyncClient(base_url=service.url) as http, asyncio.timeout(20):
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"media manager exited with {proc.returncode}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/healthz")).status_code == 200:
                        return service
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.kill_orphan_workers()

    def kill_orphan_workers(self) -> int:
        """Workers outlive a killed manager by design (a restart finishes their files);
        a test that killed its manager and never restarted it leaves them: kill them."""
        killed = 0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"mediaplane.media.worker" in argv and any(
                a.startswith(str(self.data_dir).encode() + b"/") for a in argv
            ):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed += 1
        return killed

    async def kill(self) -> None:
        self.proc.kill()
        await self.proc.wait()


OPUS = {"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}
VP8 = {"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}


async def wait_job(
    http: httpx.AsyncClient, job_id: str, pred: object, timeout: float = 15.0
) -> dict[str, object]:
    async with asyncio.timeout(timeout):
        while True:
            job: dict[str, object] = (await http.get(f"/jobs/{job_id}")).json()
            if pred(job):  # type: ignore[operator]
                return job
            await asyncio.sleep(0.1)
