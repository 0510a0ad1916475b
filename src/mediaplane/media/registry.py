"""A media manager's heartbeat in Redis (with MEDIAPLANE_MEDIA_DISCOVERY=redis).

Every `media_heartbeat_s` the manager writes `mp:media:manager:{id}` (TTL
`media_node_ttl_s`): its URL, capacity (the CPU budget in cost units), the
units in use and the ids of its jobs not yet ended. Control planes place jobs
on managers with room (control/media_pool.py); when the record expires they
mark the jobs it was running failed. A clean stop deregisters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

from mediaplane.media.manager import JobManager
from mediaplane.settings import Settings
from mediaplane.state.models import MediaManagerRecord
from mediaplane.state.store import StateStore

log = logging.getLogger(__name__)


class ManagerRegistrar:
    """Owns one task: the heartbeat of one media manager."""

    def __init__(self, store: StateStore, manager: JobManager, settings: Settings) -> None:
        self.store, self.manager = store, manager
        manager_id = settings.media_manager_id or f"{socket.gethostname()}-{settings.media_port}"
        self.record = MediaManagerRecord(
            manager_id=manager_id,
            url=settings.media_public_url or settings.media_url,
            capacity=settings.media_cpu_budget,
        )
        self.ttl_s, self.interval_s = settings.media_node_ttl_s, settings.media_heartbeat_s
        self._task: asyncio.Task[None] | None = None
        self.beats = 0

    @property
    def manager_id(self) -> str:
        return self.record.manager_id

    async def beat(self) -> None:
        self.record.used, self.record.running = self.manager.load()
        self.record.updated_at = time.time()
        await self.store.register_media_manager(self.record, self.ttl_s)
        if self.beats == 0:
            log.info(
                "media manager registered manager=%s url=%s capacity=%.0f",
                self.manager_id, self.record.url, self.record.capacity,
            )  # fmt: skip
        self.beats += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"media-heartbeat {self.manager_id}")

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception as e:  # Redis down: keep trying, the TTL speaks for us
                log.warning("manager=%s: heartbeat not written: %s", self.manager_id, e)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.store.deregister_media_manager(self.manager_id)
            log.info("media manager deregistered manager=%s", self.manager_id)
