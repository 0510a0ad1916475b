"""Several media managers behind the MediaClient interface (MEDIAPLANE_MEDIA_DISCOVERY=redis).

Managers register their capacity and load in Redis (media/registry.py). A new
job goes to the live manager with the most free capacity; a manager that
refuses it as over its budget (429) passes it to the next; when none takes it
the caller gets 429 with each manager's reason. The job's manager is kept in
`mp:media:job:{id}`, so later calls on the job reach the same manager from any
control-plane instance.

A task owned by the pool polls the registry every `poll_s`. A manager whose
heartbeat expired is marked down by the first instance to see it, which marks
the jobs it was running failed with the reason; every instance then calls its
`on_jobs_failed` listeners (recordings end as failed). A failed job answers
GET and stop with state `failed` and that reason. Files a vanished manager had
finished stay where they are: under the shared recordings root the control
plane serves them from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mediaplane.control.errors import REDIS_UNAVAILABLE, Unavailable
from mediaplane.control.media_client import MediaClient, MediaManagerError, PlacedJob
from mediaplane.control.registry_watch import REDIS_ERRORS, watch_registry
from mediaplane.state import keys
from mediaplane.state.models import MediaJobPlacement, MediaManagerRecord
from mediaplane.state.store import StateStore

log = logging.getLogger(__name__)
TERMINAL = ("completed", "failed")
JobsFailed = Callable[[list[str], str], Awaitable[None]]


class NoCapacity(MediaManagerError):
    status = 429
    code = "over_budget"


class MediaPool(MediaClient):
    def __init__(
        self, store: StateStore, secret: str, *, poll_s: float = 0.5, timeout: float = 60.0
    ) -> None:
        # No client of its own: one MediaClient per live manager.
        self.store = store
        self._secret = secret
        self._timeout = timeout
        self.poll_s = poll_s
        self.clients: dict[str, MediaClient] = {}
        self.managers: dict[str, MediaManagerRecord] = {}
        self._urls: dict[str, str] = {}
        self.on_jobs_failed: list[JobsFailed] = []
        self.refused = 0  # jobs answered 429: no manager had room (metrics)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def discover(cls, store: StateStore, secret: str, *, poll_s: float = 0.5) -> MediaPool:
        pool = cls(store, secret, poll_s=poll_s)
        with contextlib.suppress(*REDIS_ERRORS):
            await pool.refresh()
        pool._task = asyncio.create_task(
            watch_registry("media pool", pool.refresh, pool.poll_s), name="media-pool"
        )
        return pool

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for client in self.clients.values():
            await client.close()
        self.clients.clear()

    # placement -------------------------------------------------------------------
    async def _place(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        order = sorted(self.clients, key=lambda m: (-self.managers[m].free, m))
        if not order:
            self.refused += 1
            raise NoCapacity("no media manager is up to take the job")
        refusals = []
        for manager_id in order:
            try:
                job = await self.clients[manager_id]._call(method, path, **kw)
            except MediaManagerError as e:
                if e.status != 429:
                    raise
                refusals.append(f"{manager_id}: {e.message}")
                continue
            except Unavailable as e:
                refusals.append(f"{manager_id}: {e.message}")
                continue
            placement = MediaJobPlacement(
                job_id=str(job["id"]), manager_id=manager_id, kind=str(job.get("kind", ""))
            )
            await self._redis(self.store.place_media_job(placement))
            job["manager"] = manager_id
            log.info("media job=%s placed on manager=%s", placement.job_id, manager_id)
            return job
        self.refused += 1
        raise NoCapacity("no media manager has room for the job: " + "; ".join(refusals))

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        if method == "POST" and path in ("/recordings", "/jobs"):
            return await self._place(method, path, **kw)
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "jobs":
            raise MediaManagerError(f"media pool: no route for {method} {path}")
        job_id = parts[1]
        placement = await self._redis(self.store.get_media_job(job_id))
        if placement is None:
            refusal = MediaManagerError(f"media manager: no job {job_id!r}")
            refusal.status, refusal.code = 404, "not_found"
            raise refusal
        if placement.state == "failed":
            if len(parts) == 2 or parts[2] == "stop":
                return _failed_job(placement)
            refusal = MediaManagerError(f"media job {job_id} failed: {placement.error}")
            refusal.status, refusal.code = 409, "conflict"
            raise refusal
        client = self.clients.get(placement.manager_id)
        if client is None:
            raise Unavailable(f"media manager {placement.manager_id} is not reachable")
        job = await client._call(method, path, **kw)
        job["manager"] = placement.manager_id
        if job.get("state") in TERMINAL:
            # Ended on a live manager: its outcome is its own, not a failover's.
            with contextlib.suppress(*REDIS_ERRORS):
                await self.store.forget_media_job(job_id, placement.manager_id)
        return job

    async def jobs(self) -> list[PlacedJob]:
        out: list[PlacedJob] = []
        for manager_id, client in list(self.clients.items()):
            with contextlib.suppress(Unavailable):
                for job in await client.jobs():
                    out.append(job.model_copy(update={"manager": manager_id}))
        for manager_id in await self._redis(self.store.media_managers_down()):
            for placement in await self._redis(self.store.media_jobs_of(manager_id)):
                if placement.state == "failed":
                    out.append(PlacedJob.model_validate(_failed_job(placement)))
        return out

    async def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.clients else "no media manager",
            "managers": [
                self.managers[m].model_dump() | {"free": self.managers[m].free}
                for m in sorted(self.managers)
            ],
            "down": await self._redis(self.store.media_managers_down()),
        }

    async def _redis(self, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        except REDIS_ERRORS:
            raise Unavailable(REDIS_UNAVAILABLE) from None

    # the registry watcher ------------------------------------------------------------
    async def refresh(self) -> None:
        alive, stale = await self.store.media_managers()
        for manager_id in stale:
            if await self.store.mark_media_manager_down(manager_id):
                reason = f"media manager {manager_id} disappeared (heartbeat expired)"
                failed = await self.store.fail_media_jobs(
                    manager_id, reason, self.managers.get(manager_id)
                )
                log.warning(
                    "media manager marked down manager=%s jobs failed=%s", manager_id, failed
                )
                await self.store.publish(
                    keys.control_events(),
                    {"type": "mediaManagerDown", "manager": manager_id, "jobs": failed,
                     "at": time.time()},
                )  # fmt: skip
        for manager_id, record in alive.items():
            known = self.clients.get(manager_id)
            self.managers[manager_id] = record
            if known is not None and self._urls.get(manager_id) == record.url:
                continue
            if known is not None:
                await known.close()
            self.clients[manager_id] = MediaClient(record.url, self._secret, timeout=self._timeout)
            self._urls[manager_id] = record.url
            log.info("media manager up manager=%s url=%s capacity=%.0f",
                     manager_id, record.url, record.capacity)  # fmt: skip
        for manager_id in [m for m in self.clients if m not in alive]:
            await self._drop(manager_id)

    async def _drop(self, manager_id: str) -> None:
        client = self.clients.pop(manager_id)
        last_seen = self.managers.pop(manager_id, None)
        self._urls.pop(manager_id, None)
        await client.close()
        reason = f"media manager {manager_id} disappeared (heartbeat expired)"
        log.warning("media manager down manager=%s", manager_id)
        # Idempotent: whichever instance marked it down may not have got this far yet.
        failed = await self.store.fail_media_jobs(manager_id, reason, last_seen)
        for callback in list(self.on_jobs_failed):
            try:
                await callback(failed, reason)
            except Exception:
                log.exception("jobs-failed handler failed for manager=%s", manager_id)


def _failed_job(placement: MediaJobPlacement) -> dict[str, Any]:
    at = placement.failed_at or time.time()
    return {
        "id": placement.job_id,
        "kind": placement.kind,
        "state": "failed",
        "request": {},
        "error": placement.error,
        "manager": placement.manager_id,
        "history": [{"state": "failed", "at": at, "reason": placement.error or ""}],
        "stats": {},
        "ended_at": at,
    }
