"""The media job state machine (media/jobs.py) only moves forward."""

from __future__ import annotations

import itertools
from typing import get_args

import pytest

from mediaplane.media.jobs import ORDER, advance
from mediaplane.wire.media import Job, JobState

FORWARD: list[JobState] = ["pending", "starting", "running", "stopping", "completed"]


def job(state: JobState = "pending") -> Job:
    return Job(id="0123456789abcdef", kind="record", state=state, request={})


def test_every_state_has_a_place() -> None:
    assert set(ORDER) == set(get_args(JobState))


def test_the_whole_way_forward_is_recorded() -> None:
    j = job()
    for state in FORWARD[1:]:
        assert advance(j, state, f"to {state}")
        assert j.state == state
    assert [t.state for t in j.history] == FORWARD[1:]
    assert [t.reason for t in j.history] == [f"to {s}" for s in FORWARD[1:]]
    assert j.terminal and j.ended_at is not None and j.error is None


def test_states_may_be_skipped() -> None:
    j = job()
    assert advance(j, "running", "first packet before ready")
    assert advance(j, "completed")
    assert [t.state for t in j.history] == ["running", "completed"]


@pytest.mark.parametrize(
    ("current", "target"),
    [(a, b) for a, b in itertools.product(FORWARD[:-1], FORWARD) if ORDER[b] <= ORDER[a]],
)
def test_backward_or_same_state_is_refused(current: JobState, target: JobState) -> None:
    j = job(current)
    assert not advance(j, target)
    assert j.state == current and j.history == []


@pytest.mark.parametrize("current", FORWARD[:-1])
def test_any_live_state_may_fail_with_its_reason(current: JobState) -> None:
    j = job(current)
    assert advance(j, "failed", "worker killed by signal SIGKILL")
    assert j.state == "failed" and j.terminal
    assert j.error == "worker killed by signal SIGKILL"
    assert j.ended_at == j.history[-1].at


@pytest.mark.parametrize("final", ["completed", "failed"])
@pytest.mark.parametrize("target", get_args(JobState))
def test_a_terminal_job_never_moves(final: JobState, target: JobState) -> None:
    j = job(final)
    assert not advance(j, target, "late")
    assert j.state == final and j.history == []
