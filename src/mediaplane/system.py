"""Start and stop the whole system in one process tree (`mediaplane up`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field

import httpx
import uvicorn

from mediaplane.settings import SERVER_KEEP_ALIVE_S, Settings
from mediaplane.sfu import SfuClient, SfuProcess
from mediaplane.state.redis_server import RedisServer

log = logging.getLogger(__name__)


@dataclass
class System:
    settings: Settings
    redis: RedisServer | None = None
    redis_url: str = ""
    sfu: SfuProcess | None = None
    sfu_client: SfuClient | None = None
    media: asyncio.subprocess.Process | None = None
    control: uvicorn.Server | None = None
    control_task: asyncio.Task[None] | None = None
    started: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    @classmethod
    async def start(cls, settings: Settings) -> System:
        system = cls(settings)
        try:
            await system._start()
        except BaseException:
            await system.stop()
            raise
        return system

    async def _start(self) -> None:
        s = self.settings
        if s.redis_url:
            self.redis_url = s.redis_url
        else:
            self.redis = await RedisServer.start(s.data_dir / "redis")
            self.redis_url = self.redis.url
            self.started.append(f"redis-server (private) {self.redis_url}")
        self.sfu = await SfuProcess.start(s)
        self.started.append(f"SFU {self.sfu.url} workers={self.sfu.worker_pids}")
        self.sfu_client = await SfuClient.create(self.sfu.url, self.sfu.secret)
        await self._start_media()
        self.started.append(
            f"media-manager http://{s.media_host}:{s.media_port} (recordings in {s.recordings_dir})"
        )
        await self._start_control()
        self.started.append(f"control-plane {self.url} (REST, signaling, OpenAPI at /docs)")

    async def _start_media(self) -> None:
        """The media manager runs as its own process: a crash there never takes us down."""
        s = self.settings
        env = {
            **os.environ,
            "MEDIAPLANE_ENV": s.env,
            "MEDIAPLANE_DATA_DIR": str(s.data_dir),
            "MEDIAPLANE_MEDIA_HOST": s.media_host,
            "MEDIAPLANE_MEDIA_PORT": str(s.media_port),
            "MEDIAPLANE_MEDIA_SECRET": s.secret("media_secret"),
            "MEDIAPLANE_LOG_FORMAT": s.log_format,
            "MEDIAPLANE_LOG_LEVEL": s.log_level,
        }
        if s.metrics_token is not None:
            env["MEDIAPLANE_METRICS_TOKEN"] = s.metrics_token.get_secret_value()
        if s.recordings_root is not None:
            env["MEDIAPLANE_RECORDINGS_ROOT"] = str(s.recordings_root)
        self.media = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mediaplane.media", env=env, start_new_session=True
        )
        url = f"http://{s.media_host}:{s.media_port}/healthz"
        async with httpx.AsyncClient() as http, asyncio.timeout(30):
            while True:
                if self.media.returncode is not None:
                    raise RuntimeError(f"the media manager exited with {self.media.returncode}")
                with contextlib.suppress(httpx.TransportError):
                    r = await http.get(url)
                    if r.status_code == 200:
                        return
                    if r.status_code == 503:
                        raise RuntimeError(f"the media manager is not ready: {r.text}")
                await asyncio.sleep(0.2)

    async def _start_control(self) -> None:
        from mediaplane.control.app import create_app

        assert self.sfu is not None
        app = create_app(self.settings, sfu_url=self.sfu.url, redis_url=self.redis_url)
        config = uvicorn.Config(
            app,
            host=self.settings.host,
            port=self.settings.port,
            log_level="info",
            lifespan="on",
            timeout_keep_alive=SERVER_KEEP_ALIVE_S,
            log_config=None,  # uvicorn's loggers go to the root handler (text or JSON)
        )
        self.control = uvicorn.Server(config)
        self.control_task = asyncio.create_task(self.control.serve(), name="control-plane")
        async with asyncio.timeout(20):
            while not self.control.started:
                if self.control_task.done():
                    self.control_task.result()
                    raise RuntimeError("the control plane exited during start-up")
                await asyncio.sleep(0.05)

    async def status(self) -> dict[str, object]:
        info = await self.sfu_client.server_info() if self.sfu_client else None
        return {
            "redis": self.redis_url,
            "sfu": self.sfu.url if self.sfu else None,
            "sfu_workers": [w.model_dump() for w in info.workers] if info else [],
        }

    async def stop(self) -> None:
        if self.control is not None and self.control_task is not None:
            self.control.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self.control_task, 15)
        if self.media is not None and self.media.returncode is None:
            # SIGTERM: uvicorn shuts down and the manager finishes its recordings by EOS.
            self.media.terminate()
            try:
                await asyncio.wait_for(self.media.wait(), 30)
            except TimeoutError:
                self.media.kill()
                await self.media.wait()
        if self.sfu_client is not None:
            await self.sfu_client.close()
        if self.sfu is not None:
            await self.sfu.stop()
        if self.redis is not None:
            await self.redis.stop()

    async def wait(self) -> None:
        """Until a child that must run exits."""
        waits: list[asyncio.Future[object]] = []
        if self.sfu is not None:
            waits.append(asyncio.ensure_future(self.sfu.wait()))
        if self.media is not None:
            waits.append(asyncio.ensure_future(self.media.wait()))
        if self.control_task is not None:
            waits.append(asyncio.ensure_future(asyncio.shield(self.control_task)))
        if not waits:
            return
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
