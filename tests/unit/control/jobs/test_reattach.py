"""JobService.reattach with no service: fakes for the records, the manager and the owner."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from mediaplane.control.errors import NotFound, Unavailable
from mediaplane.control.jobs.lifecycle import JobRecord, JobService
from mediaplane.media.models import Job, JobState, Transition

ALIVE = "alive-instance"


class Rec(JobRecord):
    noun: ClassVar[str] = "thing"


class Records:
    def __init__(self, recs: list[Rec]) -> None:
        self.recs = {r.id: r for r in recs}
        self.saved: list[tuple[str, JobState]] = []

    async def list(self, *_: Any) -> list[Rec]:
        return [r.model_copy(deep=True) for r in self.recs.values()]

    async def save(self, rec: Rec) -> None:
        self.recs[rec.id] = rec.model_copy(deep=True)
        self.saved.append((rec.id, rec.state))


class Media:
    def __init__(self, jobs: dict[str, Job | Exception]) -> None:
        self.jobs = jobs
        self.stopped: list[str] = []

    async def get(self, job_id: str) -> Job:
        job = self.jobs[job_id]
        if isinstance(job, Exception):
            raise job
        return job

    async def stop(self, job_id: str) -> Job:
        self.stopped.append(job_id)
        job = await self.get(job_id)
        return job.model_copy(
            update={"state": "completed",
                    "history": [Transition(state="completed", at=2.0, reason="stopped; kept")]}
        )  # fmt: skip


class Hooks:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def emit(self, event: str, data: dict[str, Any]) -> str:
        self.events.append((event, data["id"]))
        return ""


class Service(JobService[Rec]):
    event = "thing"
    resumable = False

    def __init__(self, records: Records, media: Media, hooks: Hooks) -> None:
        rooms = SimpleNamespace(store=None, instance_id="me")
        super().__init__(rooms, media, hooks, None, records)  # type: ignore[arg-type]
        self.resumed: list[str] = []

    async def owner_alive(self, rec: Rec) -> bool:
        return rec.instance in ("me", ALIVE)

    async def resume(self, rec: Rec) -> None:
        self.resumed.append(rec.id)

    async def stop(self, rec_id: str, reason: str) -> Rec:
        raise AssertionError("reattach never stops through the service's own stop")


def _rec(rec_id: str, state: JobState, instance: str = "gone") -> Rec:
    return Rec(id=rec_id.ljust(16, "0"), room="r", state=state, instance=instance,
               media_job_id=f"job-{rec_id}")  # fmt: skip


def _job(state: JobState, error: str | None = None) -> Job:
    return Job(id="j", kind="record", state=state, request={}, error=error)


@pytest.mark.parametrize("resumable", [False, True])
async def test_reattach_after_a_restart(resumable: bool) -> None:
    recs = [
        _rec("a", "running"),  # its job still runs
        _rec("b", "running"),  # its job failed while nobody watched
        _rec("c", "starting"),  # the manager does not know its job
        _rec("d", "running"),  # the manager is unreachable now
        _rec("e", "completed"),  # ended: kept
        _rec("f", "running", instance=ALIVE),  # its owner is alive: not ours
        _rec("g", "running", instance="me"),  # ours, running here
    ]
    media = Media({
        "job-a": _job("running"), "job-b": _job("failed", "worker killed"),
        "job-c": NotFound("no job"), "job-d": Unavailable("down"),
        "job-e": _job("completed"), "job-f": _job("running"), "job-g": _job("running"),
    })  # fmt: skip
    records, hooks = Records(recs), Hooks()
    service = Service(records, media, hooks)
    service.resumable = resumable
    await service.reattach()
    state = {r.id[0]: r.state for r in records.recs.values()}
    error = {r.id[0]: r.error for r in records.recs.values()}
    if resumable:
        assert service.resumed == ["a000000000000000"] and media.stopped == []
        assert state["a"] == "running"
    else:
        # Stopped, so its file is finished; it ends with the job's outcome.
        assert service.resumed == [] and media.stopped == ["job-a"]
        assert state["a"] == "completed"
        history = [t.state for t in records.recs["a000000000000000"].history]
        assert history == ["stopping", "completed"]
    assert state["b"] == "failed" and "worker killed" in (error["b"] or "")
    assert state["c"] == "failed" and "its media job is gone" in (error["c"] or "")
    assert (state["d"], state["e"], state["f"], state["g"]) == (
        "running",
        "completed",
        "running",
        "running",
    )
    ended = {"b", "c"} | (set() if resumable else {"a"})
    assert {i[0] for i, _ in records.saved} == ended
    assert sorted(hooks.events) == sorted(
        [("thing.failed", "b000000000000000"), ("thing.failed", "c000000000000000")]
        + ([] if resumable else [("thing.finished", "a000000000000000")])
    )
