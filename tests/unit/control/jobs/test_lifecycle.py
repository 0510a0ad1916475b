"""The one job lifecycle: every transition allowed or refused, terminal states, reattach."""

from __future__ import annotations

import itertools
import logging
from typing import get_args

import pytest

from mediaplane.control.jobs.lifecycle import (
    LIVE,
    ORDER,
    TERMINAL,
    JobRecord,
    job_reason,
    may_advance,
    reattach_decision,
)
from mediaplane.media.models import Job, JobState, Transition

STATES: tuple[JobState, ...] = get_args(JobState)
ALLOWED = {
    ("pending", "starting"), ("pending", "running"), ("pending", "stopping"),
    ("pending", "completed"), ("pending", "failed"),
    ("starting", "running"), ("starting", "stopping"), ("starting", "completed"),
    ("starting", "failed"),
    ("running", "stopping"), ("running", "completed"), ("running", "failed"),
    ("stopping", "completed"), ("stopping", "failed"),
}  # fmt: skip


def test_the_states_are_the_media_managers() -> None:
    assert set(ORDER) == set(STATES)
    assert STATES == ("pending", "starting", "running", "stopping", "completed", "failed")
    assert set(LIVE) | TERMINAL == set(STATES) and not set(LIVE) & TERMINAL


@pytest.mark.parametrize(("current", "target"), list(itertools.product(STATES, STATES)))
def test_every_transition_is_allowed_or_refused(current: JobState, target: JobState) -> None:
    assert may_advance(current, target) is ((current, target) in ALLOWED)


@pytest.mark.parametrize("current", STATES)
@pytest.mark.parametrize("target", STATES)
def test_a_record_moves_only_forward(current: JobState, target: JobState) -> None:
    rec = JobRecord(id="0123456789abcdef", room="r", state=current)
    before = list(rec.history)
    moved = rec.advance(target, "why")
    assert moved is ((current, target) in ALLOWED)
    if moved:
        assert rec.state == target
        assert [t.state for t in rec.history] == [*[t.state for t in before], target]
        assert rec.history[-1].reason == "why"
    else:
        assert rec.state == current and rec.history == before


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_a_terminal_state_never_changes(terminal: JobState) -> None:
    rec = JobRecord(id="0123456789abcdef", room="r")
    rec.advance(terminal, "done")
    error = rec.error
    for target in STATES:
        assert not rec.advance(target, "again")
    assert rec.state == terminal and rec.terminal and rec.error == error
    assert len(rec.history) == 1


def test_failed_records_the_reason_as_the_error() -> None:
    rec = JobRecord(id="0123456789abcdef", room="r")
    rec.begin()
    assert [(t.state, t.reason, t.at) for t in rec.history] == [
        ("starting", "requested", rec.requested_at)
    ]
    rec.advance("running", "media flows")
    assert rec.error is None
    rec.advance("failed", "the source went away")
    assert rec.error == "the source went away"
    assert [t.state for t in rec.history] == ["starting", "running", "failed"]


def test_a_transition_is_logged_with_the_room_and_job_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Kind(JobRecord):
        noun = "egress"

        def log_fields(self) -> str:
            return "identity=alice"

    rec = Kind(id="0123456789abcdef", room="lobby", media_job_id="fedcba9876543210")
    with caplog.at_level(logging.INFO, logger="mediaplane.control.jobs.lifecycle"):
        rec.advance("running", "media flows")
    assert caplog.messages == [
        "egress=0123456789abcdef room=lobby job=fedcba9876543210 identity=alice "
        "state=running media flows"
    ]


def _job(state: JobState, *, error: str | None = None, reason: str = "") -> Job:
    history = [Transition(state=state, at=1.0, reason=reason)] if reason else []
    return Job(id="fedcba9876543210", kind="record", state=state, request={}, history=history,
               error=error)  # fmt: skip


@pytest.mark.parametrize("record_state", sorted(TERMINAL))
@pytest.mark.parametrize("job_state", [None, *STATES])
def test_reattach_keeps_an_ended_record(record_state: JobState, job_state: JobState | None) -> None:
    job = _job(job_state) if job_state else None
    for resumable in (True, False):
        assert reattach_decision(record_state, job, resumable=resumable) == "keep"


@pytest.mark.parametrize("record_state", LIVE)
def test_reattach_of_an_unfinished_record(record_state: JobState) -> None:
    # The manager no longer knows the job, or it ended: the record takes its outcome.
    for resumable in (True, False):
        assert reattach_decision(record_state, None, resumable=resumable) == "finish"
        for ended in sorted(TERMINAL):
            assert reattach_decision(record_state, _job(ended), resumable=resumable) == "finish"
    # It still runs: a kind with no SFU objects follows it again, the others stop it.
    for live in LIVE:
        assert reattach_decision(record_state, _job(live), resumable=True) == "watch"
        assert reattach_decision(record_state, _job(live), resumable=False) == "stop"


def test_job_reason_is_the_error_else_the_last_reason() -> None:
    assert job_reason(None) == ""
    assert job_reason(_job("running")) == ""
    assert job_reason(_job("completed", reason="stopped; file kept at x.ogg")) == (
        "stopped; file kept at x.ogg"
    )
    assert job_reason(_job("failed", error="worker killed", reason="x")) == "worker killed"
