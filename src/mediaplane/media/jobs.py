"""The job state machine: states only move forward.

    pending -> starting -> running -> stopping -> completed | failed

`starting` means the worker process runs and its sockets are bound; `running`
means the first packet (or first decoded data) arrived. Any non-terminal state
may fail. Every transition is timestamped, carries a reason and is logged with
the job id.
"""

from __future__ import annotations

import logging
import time

from mediaplane.wire.media import Job, JobState, Transition

log = logging.getLogger(__name__)

ORDER: dict[JobState, int] = {
    "pending": 0,
    "starting": 1,
    "running": 2,
    "stopping": 3,
    "completed": 4,
    "failed": 4,
}


class TransitionError(Exception):
    pass


def advance(job: Job, state: JobState, reason: str = "") -> bool:
    """Move `job` to `state` if that is forward; returns whether it moved."""
    if job.terminal:
        return False
    if state != "failed" and ORDER[state] <= ORDER[job.state]:
        return False
    now = time.time()
    job.state = state
    job.history.append(Transition(state=state, at=now, reason=reason))
    if job.terminal:
        job.ended_at = now
        if state == "failed":
            job.error = reason
    log.info("job=%s kind=%s state=%s %s", job.id, job.kind, state, reason)
    return True
