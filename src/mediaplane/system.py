"""Start and stop the whole system in one process tree (`mediaplane up`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from mediaplane.observability.logs import redact
from mediaplane.reachability import Reach, prepare, ssl_files
from mediaplane.settings import Settings
from mediaplane.sfu import SfuClient, SfuProcess
from mediaplane.state.redis_server import RedisServer
from mediaplane.turn.credentials import turn_enabled
from mediaplane.turn.server import TurnServer

log = logging.getLogger(__name__)

# (step, detail): "redis", "turn", "sfu", "media", "control" as each starts; detail says where.
StepCallback = Callable[[str, str], None]
SHUTDOWN_REASON = "server shutting down"


class ControlServer(uvicorn.Server):
    """uvicorn without its own SIGINT/SIGTERM handlers: whoever runs the system owns
    the signals and decides the order of the shutdown (media work first)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class FinishedWork:
    """A recording or egress that was running when the system was asked to stop."""

    kind: str  # "recording" or "egress"
    id: str
    room: str
    state: str
    detail: str


@dataclass
class System:
    settings: Settings
    redis: RedisServer | None = None
    redis_url: str = ""
    turn: TurnServer | None = None
    sfu: SfuProcess | None = None
    sfu_client: SfuClient | None = None
    media: asyncio.subprocess.Process | None = None
    control: uvicorn.Server | None = None
    control_task: asyncio.Task[None] | None = None
    app: FastAPI | None = None
    started: list[str] = field(default_factory=list)
    on_step: StepCallback | None = None
    log_level: str = "info"  # the control plane's uvicorn (its access log at info)
    reach: Reach | None = None

    @property
    def url(self) -> str:
        """The control plane as other machines reach it (https unless MEDIAPLANE_TLS
        keeps plain http: docs/networking.md)."""
        if self.reach is None:
            return f"http://{self.settings.host}:{self.settings.port}"
        return self.reach.url

    @property
    def local_url(self) -> str:
        """The control plane as a client on this machine reaches it."""
        return self.reach.local_url if self.reach else self.url

    @classmethod
    async def start(
        cls, settings: Settings, on_step: StepCallback | None = None, log_level: str = "info"
    ) -> System:
        system = cls(settings, on_step=on_step, log_level=log_level)
        try:
            await system._start()
        except BaseException:
            await system.stop()
            raise
        return system

    def _step(self, step: str, detail: str) -> None:
        if self.on_step is not None:
            self.on_step(step, detail)

    def _done(self, line: str) -> None:
        self.started.append(line)
        name, _, where = line.partition(" ")
        self._step(f"{name} up", where)

    async def _start(self) -> None:
        s = self.settings
        self.reach = reach = await asyncio.to_thread(prepare, s)  # may resolve a name
        self._done(f"announced {reach.announced} ({reach.describe()})")
        for warning in reach.warnings:
            log.warning("%s", warning)
            self._step("warning", warning)
        if s.redis_url:
            self.redis_url = s.redis_url
            self._done(f"redis {redact(self.redis_url)} (external)")
        else:
            self._step("redis", f"starting a private redis-server in {s.data_dir / 'redis'}")
            self.redis = await RedisServer.start(s.data_dir / "redis")
            self.redis_url = self.redis.url
            self._done(f"redis {redact(self.redis_url)} (private redis-server, password set)")
        if turn_enabled(s):
            self._step("turn", "starting coturn (turnserver) on the announced address")
            self.turn = await TurnServer.start(s, reach.certificate)
            self._done(f"turn {self.turn.describe()}")
        self._step("sfu", f"starting the SFU (mediasoup) on {s.sfu_host}:{s.sfu_port}")
        self.sfu = await SfuProcess.start(s)
        self.sfu_client = await SfuClient.create(self.sfu.url, self.sfu.secret)
        self._done(f"sfu {self.sfu.url} (workers {self.sfu.worker_pids})")
        self._step("media", f"starting the media manager on {s.media_host}:{s.media_port}")
        await self._start_media()
        self._done(f"media-manager {s.media_url} (recordings in {s.recordings_dir})")
        self._step("control", f"starting the control plane on {s.host}:{s.port}")
        await self._start_control()
        self._done(f"control-plane {self.url} (REST, signaling, OpenAPI at /docs)")

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
        from mediaplane.control.server_config import control_config

        assert self.sfu is not None
        self.app = create_app(self.settings, sfu_url=self.sfu.url, redis_url=self.redis_url)
        certfile, keyfile = ssl_files(self.reach)
        config = control_config(
            self.app,
            self.settings,
            host=self.settings.host,
            port=self.settings.port,
            log_level=self.log_level,
            log_config=None,  # uvicorn's loggers go to the root handler (text or JSON)
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        self.control = ControlServer(config)
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
            "redis": redact(self.redis_url),
            "sfu": self.sfu.url if self.sfu else None,
            "sfu_workers": [w.model_dump() for w in info.workers] if info else [],
        }

    async def finish_media_work(self) -> list[FinishedWork]:
        """Stop every running recording and egress the way a REST stop does (EOS,
        the file finalized, the record completed), before anything else goes down."""
        if self.app is None or self.control_task is None or self.control_task.done():
            return []
        state: Any = self.app.state
        recs = getattr(state, "recordings", None)
        egresses = getattr(state, "egress", None)
        jobs: list[tuple[str, str, Any]] = []
        if recs is not None:
            tops = list(recs.groups) + [
                rec_id
                for rec_id, active in recs.active.items()
                if (active.record.parent_id or "") not in recs.groups
            ]
            jobs += [("recording", rec_id, recs.stop_any) for rec_id in dict.fromkeys(tops)]
        if egresses is not None:
            jobs += [("egress", egress_id, egresses.stop) for egress_id in list(egresses.active)]

        async def one(kind: str, item_id: str, stop: Any) -> FinishedWork:
            self._step("finish", f"stopping {kind} {item_id}")
            try:
                rec = await stop(item_id, SHUTDOWN_REASON)
            except Exception as e:  # it may have ended on its own meanwhile
                log.warning("%s=%s stop at shutdown: %s", kind, item_id, e)
                return FinishedWork(kind, item_id, "", "unknown", str(e))
            detail = rec.history[-1].reason if rec.history else ""
            duration = getattr(rec, "duration_s", None)
            if duration is not None:
                detail = f"{duration:.1f} s; {detail}"
            log.info("%s=%s room=%s %s at shutdown", kind, item_id, rec.room, rec.state)
            return FinishedWork(kind, item_id, rec.room, rec.state, detail)

        return list(await asyncio.gather(*(one(k, i, f) for k, i, f in jobs)))

    async def stop(self) -> None:
        if self.control is not None and self.control_task is not None:
            self._step("stop", "control plane")
            self.control.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self.control_task), 60)
            except TimeoutError:
                log.error("the control plane did not stop within 60 s; cancelling it")
                self.control_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.control_task
        if self.media is not None and self.media.returncode is None:
            self._step("stop", "media manager")
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
            self._step("stop", "SFU")
            await self.sfu.stop()
        if self.turn is not None:
            self._step("stop", "TURN")
            await self.turn.stop()
        if self.redis is not None:
            self._step("stop", "redis")
            await self.redis.stop()

    async def wait(self) -> None:
        """Until a child that must run exits."""
        waits: list[asyncio.Future[object]] = []
        if self.sfu is not None:
            waits.append(asyncio.ensure_future(self.sfu.wait()))
        if self.media is not None:
            waits.append(asyncio.ensure_future(self.media.wait()))
        if self.turn is not None:
            waits.append(asyncio.ensure_future(self.turn.wait()))
        if self.control_task is not None:
            waits.append(asyncio.ensure_future(asyncio.shield(self.control_task)))
        if not waits:
            return
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
