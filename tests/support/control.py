"""Run real control-plane instances for tests: in this event loop (ControlInstance), or
as `python -m mediaplane.control`, its own process, as an operator runs it (control_process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from mediaplane.certificates import Certificate
from mediaplane.control.auth import Grants, mint_token
from mediaplane.settings import Settings
from mediaplane.state.redis_server import free_tcp_port


@dataclass
class ControlInstance:
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int
    host: str = "127.0.0.1"
    certificate: Certificate | None = None  # https/wss with it (TLS only), else http

    @property
    def scheme(self) -> str:
        return "https" if self.certificate is not None else "http"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an httpx client of this instance trusts: exactly its certificate."""
        if self.certificate is None:
            return True
        ctx = ssl.create_default_context(cafile=str(self.certificate.cert_file))
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return ctx

    @property
    def app(self) -> FastAPI:
        """The running app (its state: rooms, whip, ws_slots)."""
        app: FastAPI = self.server.config.app
        return app

    @property
    def http(self) -> str:
        """The base URL (https with a certificate; the name is the historical one)."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def ws(self, room: str) -> str:
        ws = "wss" if self.certificate is not None else "ws"
        return f"{ws}://{self.host}:{self.port}/ws/rooms/{room}"

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        sfu_url: str,
        redis_url: str,
        port: int | None = None,
        host: str = "127.0.0.1",
        certificate: Certificate | None = None,
    ) -> ControlInstance:
        """`certificate`: serve TLS only with it (as `up` does off loopback)."""
        from mediaplane.control.app import create_app
        from mediaplane.control.server_config import control_config

        port = port or free_tcp_port()
        app = create_app(settings, sfu_url=sfu_url, redis_url=redis_url)
        tls = {}
        if certificate is not None:
            tls = {"ssl_certfile": str(certificate.cert_file),
                   "ssl_keyfile": str(certificate.key_file)}  # fmt: skip
        config = control_config(app, settings, host=host, port=port, log_level="warning", **tls)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        return cls(server, task, port, host, certificate)

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, settings: Settings, *, sfu_url: str, redis_url: str
    ) -> AsyncIterator[ControlInstance]:
        inst = await cls.start(settings, sfu_url=sfu_url, redis_url=redis_url)
        try:
            yield inst
        finally:
            await inst.stop()

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 15)


@dataclass
class ControlProcess:
    proc: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, room: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/rooms/{room}"

    def memory(self, field: str = "VmRSS") -> int:
        """Bytes of `field` in /proc/<pid>/status: VmRSS (resident now), VmHWM (its peak)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field}")


@contextlib.asynccontextmanager
async def control_process(
    sfu_port: int, redis_url: str, log: Path, **env: str
) -> AsyncIterator[ControlProcess]:
    """`python -m mediaplane.control` on a free port (`env`: more MEDIAPLANE_ settings),
    its output in `log`; up (healthz 200) when yielded, terminated after."""
    port = free_tcp_port()
    full = {**os.environ, "MEDIAPLANE_ENV": "test", "MEDIAPLANE_REDIS_URL": redis_url,
            "MEDIAPLANE_SFU_HOST": "127.0.0.1", "MEDIAPLANE_SFU_PORT": str(sfu_port),
            "MEDIAPLANE_PORT": str(port), **env}  # fmt: skip
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mediaplane.control", env=full, stdout=out, stderr=out
        )
    inst = ControlProcess(proc, port, log)
    try:
        async with httpx.AsyncClient(base_url=inst.http, timeout=5) as http:
            async with asyncio.timeout(30):
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    assert proc.returncode is None, log.read_text()[-2000:]
                    await asyncio.sleep(0.2)
        yield inst
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


def token(settings: Settings, identity: str, **grants: object) -> str:
    return mint_token(
        api_key=settings.api_key,
        api_secret=settings.secret("api_secret"),
        identity=identity,
        grants=Grants(**grants),  # type: ignore[arg-type]
    )


def participant(settings: Settings, identity: str, room: str, **extra: object) -> str:
    return token(settings, identity, room=room, room_join=True, **extra)


def admin(settings: Settings) -> str:
    return token(settings, "admin", room_create=True, room_list=True)


async def ws_close(url: str) -> tuple[int | None, str]:
    """Open a signaling socket and wait for the server to close it: (code, reason)."""
    ws = await connect(url)
    try:
        await ws.recv()
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
    raise AssertionError(f"the server sent a message instead of closing {url}")
