"""Start and stop the whole system in one process tree (`mediaplane up`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from mediaplane.settings import Settings
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
    started: list[str] = field(default_factory=list)

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

    async def status(self) -> dict[str, object]:
        info = await self.sfu_client.server_info() if self.sfu_client else None
        return {
            "redis": self.redis_url,
            "sfu": self.sfu.url if self.sfu else None,
            "sfu_workers": [w.model_dump() for w in info.workers] if info else [],
        }

    async def stop(self) -> None:
        if self.sfu_client is not None:
            await self.sfu_client.close()
        if self.sfu is not None:
            await self.sfu.stop()
        if self.redis is not None:
            await self.redis.stop()

    async def wait(self) -> None:
        """Until a child that must run exits."""
        waits = []
        if self.sfu is not None:
            waits.append(asyncio.ensure_future(self.sfu.wait()))
        if not waits:
            return
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
