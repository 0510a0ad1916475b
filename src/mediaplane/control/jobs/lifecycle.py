"""One job lifecycle for every kind the control plane runs on a media manager.

States and their order are the media manager's (docs/job-lifecycle.md):

    pending -> starting -> running -> stopping -> completed
       \\           \\           \\           \\
        `-----------`-----------`-----------`--> failed

A kind (recordings, egress, injections, transcodes) keeps a `JobRecord` in Redis
and a `JobService` that supplies only what is particular to it; this module owns
the transitions (forward only, logged with the room and job ids), the watch of the
manager job, the finish (final state, record, webhook), the stop of the manager job
and the decision taken for a record found unfinished after a control-plane restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, Field

from mediaplane.control.errors import ControlError, Unavailable
from mediaplane.control.jobs.records import RecordStore, StoredRecord
from mediaplane.control.media_client import MediaClient
from mediaplane.control.rooms import RoomManager
from mediaplane.control.tasks import OwnedTasks
from mediaplane.control.webhooks import Webhooks
from mediaplane.media.models import TERMINAL as MANAGER_TERMINAL
from mediaplane.media.models import Job, JobState
from mediaplane.state import keys

log = logging.getLogger(__name__)

STATES: tuple[JobState, ...] = get_args(JobState)  # the manager's, in their order
TERMINAL: frozenset[JobState] = frozenset(s for s in STATES if s in MANAGER_TERMINAL)
# Rank: each live state after the one before; completed and failed both last.
ORDER: dict[JobState, int] = {s: min(i, len(STATES) - len(TERMINAL)) for i, s in enumerate(STATES)}
LIVE: tuple[JobState, ...] = tuple(s for s in STATES if s not in TERMINAL)


def may_advance(current: JobState, target: JobState) -> bool:
    """Whether `current -> target` is allowed: forward only, `failed` from any live
    state, nothing out of a terminal state."""
    if current in TERMINAL:
        return False
    return target == "failed" or ORDER[target] > ORDER[current]


class JobTransition(BaseModel):
    state: JobState
    at: float
    reason: str = ""


class JobRecord(StoredRecord):
    """What every kind's record has: its state history, its manager job, its owner."""

    noun: ClassVar[str] = "job"  # in logs: `<noun>=<id>`

    state: JobState = "starting"
    history: list[JobTransition] = Field(default_factory=list)
    media_job_id: str | None = None
    requested_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    stopped_at: float | None = None
    error: str | None = None
    instance: str = ""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def log_fields(self) -> str:
        """Extra `key=value` pairs a kind wants in its transition logs."""
        return ""

    def begin(self, reason: str = "requested") -> None:
        """The first transition, at the request time."""
        self.history.append(JobTransition(state=self.state, at=self.requested_at, reason=reason))

    def advance(self, state: JobState, reason: str = "") -> bool:
        """Move to `state` if allowed (see `may_advance`); returns whether it moved."""
        if not may_advance(self.state, state):
            return False
        self.state = state
        self.history.append(JobTransition(state=state, at=time.time(), reason=reason))
        if state == "failed":
            self.error = reason
        extra = self.log_fields()
        log.info(
            "%s=%s room=%s job=%s%s state=%s %s",
            self.noun, self.id, self.room, self.media_job_id, f" {extra}" if extra else "",
            state, reason,
        )  # fmt: skip
        return True


def job_reason(job: Job | None) -> str:
    """Why a manager job is where it is: its error, else its last transition's reason."""
    if job is None:
        return ""
    if job.error:
        return job.error
    return job.history[-1].reason if job.history else ""


Reattach = Literal["keep", "watch", "finish", "stop"]


def reattach_decision(record_state: JobState, job: Job | None, *, resumable: bool) -> Reattach:
    """What to do with a record this instance owns, found by a restarted control plane.

    keep:   the record has ended; nothing to do.
    finish: its manager job has ended (or is gone): the record takes its outcome.
    watch:  the job runs and the kind can follow it with no SFU objects (a transcode).
    stop:   the job runs but the SFU plumbing it needed was this process's: stop it,
            so the file is finished and the record ends (not left live forever).
    """
    if record_state in TERMINAL:
        return "keep"
    if job is None or job.state in TERMINAL:
        return "finish"
    return "watch" if resumable else "stop"


R = TypeVar("R", bound=JobRecord)
Step = Callable[[Job], Awaitable[bool]]


class JobService(ABC, Generic[R]):
    """What the job kinds share: their records, the manager job, the watch, the finish,
    webhooks `<event>.started|finished|failed`, the reattach after a restart.

    A kind sets `event` (the webhook prefix) and may override `on_finished` (after
    the final state is stored) and `resumable`."""

    event: ClassVar[str] = "job"
    resumable: ClassVar[bool] = False
    poll_s: float = 0.5

    def __init__(
        self,
        rooms: RoomManager,
        media: MediaClient,
        webhooks: Webhooks,
        root: Path,
        records: RecordStore[R],
    ) -> None:
        self.rooms = rooms
        self.store = rooms.store
        self.instance = rooms.instance_id
        self.media = media
        self.webhooks = webhooks
        self.root = root  # where the kind's files are (or are read from)
        self.records = records
        self.tasks = OwnedTasks()

    # the service's life ----------------------------------------------------------------
    async def start_service(self) -> None:
        """Follow what the kind follows (`listen`); take over what a gone instance left."""
        self.listen()
        self.tasks.spawn(self.reattach(), f"{self.event} reattach")

    def listen(self) -> None:
        """The kind's subscriptions (room events, SFU notifications), in one place."""

    def live(self) -> list[str]:
        """Ids of the jobs this instance runs now (stopped at shutdown)."""
        return []

    async def close(self) -> None:
        """Stop every job this instance runs (files are finished, not cut), then the tasks."""
        for rec_id in self.live():
            with contextlib.suppress(Exception):
                await self.stop(rec_id, "server shutting down")
        await self.tasks.cancel()

    # storage ----------------------------------------------------------------------
    async def save(self, rec: R) -> None:
        await self.records.save(rec)

    async def load(self, rec_id: str) -> R | None:
        return await self.records.load(rec_id)

    async def get(self, room: str, rec_id: str) -> R:
        return await self.records.get(room, rec_id)

    async def list_all(self, room: str | None = None) -> list[R]:
        return await self.records.list(room)

    @abstractmethod
    async def stop(self, rec_id: str, reason: str) -> R:
        """Stop one (the kind's own teardown); 409 when it has ended, 404 when unknown."""

    # the life -----------------------------------------------------------------------
    def emit(self, rec: R, what: Literal["started", "finished", "failed"]) -> None:
        self.webhooks.emit(f"{self.event}.{what}", rec.model_dump(mode="json"))

    async def mark_running(self, rec: R, reason: str, started_at: float | None) -> bool:
        """`running` (once): stored, `<event>.started` sent. True when it moved."""
        if not rec.advance("running", reason):
            return False
        rec.started_at = started_at
        await self.save(rec)
        self.emit(rec, "started")
        await self.on_running(rec)
        return True

    async def on_running(self, rec: R) -> None:
        """A kind's extra step once running (recordings tell the room)."""

    async def finish(self, rec: R, ok: bool, reason: str) -> None:
        """The final state: stored, `<event>.finished` or `.failed` sent, `on_finished`."""
        rec.stopped_at = rec.stopped_at or time.time()
        if not rec.advance("completed" if ok else "failed", reason):
            return
        with contextlib.suppress(Exception):
            await self.save(rec)
        self.emit(rec, "finished" if ok else "failed")
        await self.on_finished(rec)

    async def on_finished(self, rec: R) -> None:
        """A kind's extra step once ended (recordings tell the room)."""

    async def stop_job(self, rec: R) -> Job | None:
        """Stop the manager job (it answers once ended); when that fails (it may have
        ended on its own), read it. None when there is none or it cannot be read."""
        if rec.media_job_id is None:
            return None
        try:
            return await self.media.stop(rec.media_job_id)
        except Exception as e:
            log.warning("%s=%s room=%s stop of its job failed: %s", rec.noun, rec.id, rec.room, e)
        with contextlib.suppress(Exception):
            return await self.media.get(rec.media_job_id)
        return None

    async def watch(self, rec: R, step: Step, *, retry_s: float | None = None) -> None:
        """Poll the manager job, handing each read to `step` until it returns False.
        A failed read is logged once per outage and retried (a lost manager is the
        registry's case: its jobs are failed through `on_media_jobs_failed`)."""
        assert rec.media_job_id is not None
        unreachable = False
        while True:
            try:
                job = await self.media.get(rec.media_job_id)
            except Exception as e:
                if not unreachable:
                    log.warning(
                        "%s=%s room=%s cannot read its job: %s", rec.noun, rec.id, rec.room, e
                    )
                unreachable = True
                await asyncio.sleep(retry_s or self.poll_s)
                continue
            unreachable = False
            if not await step(job):
                return
            await asyncio.sleep(self.poll_s)

    # after a restart ---------------------------------------------------------------------
    async def reattach(self) -> None:
        """Records left unfinished by an instance that is gone: take the job's outcome, go on
        watching it (a resumable kind) or stop it (see `reattach_decision`)."""
        for rec in await self.records.list():
            if rec.terminal or rec.media_job_id is None or await self.owner_alive(rec):
                continue
            try:
                job: Job | None = await self.media.get(rec.media_job_id)
            except ControlError as e:
                if isinstance(e, Unavailable) or e.status != 404:
                    continue  # the manager cannot say now: the record stays as it is
                job = None  # the manager does not know it
            decision = reattach_decision(rec.state, job, resumable=self.resumable)
            log.info(
                "%s=%s room=%s job=%s after a restart: %s",
                rec.noun, rec.id, rec.room, rec.media_job_id, decision,
            )  # fmt: skip
            if decision == "watch":
                await self.resume(rec)
                continue
            if decision == "stop":
                rec.advance("stopping", "the control plane restarted")
                job = await self.stop_job(rec)
            ok = job is not None and job.state == "completed"
            await self.finish_after_restart(rec, job, ok)

    async def owner_alive(self, rec: R) -> bool:
        """Whether the instance that owns `rec` is this one or another live one (its
        heartbeat key is there): then it is not this instance's to take over."""
        if rec.instance == self.instance:
            return True
        return bool(await self.records.redis.exists(keys.instance(rec.instance)))

    async def resume(self, rec: R) -> None:
        """Follow a running job again (resumable kinds)."""

    async def finish_after_restart(self, rec: R, job: Job | None, ok: bool) -> None:
        why = job_reason(job) or "its media job is gone"
        await self.finish(rec, ok, f"ended while the control plane was down: {why}")
