"""Spawn, watch and stop one worker process (argv, never a shell).

It speaks typed lines (wire.media): WorkerEvent on its stdout, WorkerCommand on its stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import ValidationError

from mediaplane.wire.media import WORKER_EVENT, AddInput, AnyWorkerEvent, RemoveInput

log = logging.getLogger(__name__)
EventHandler = Callable[[AnyWorkerEvent], Awaitable[None]]
WORKER_MODULE = "mediaplane.media.worker"  # its argv names it: how an orphan is recognised


class WorkerProcess:
    def __init__(self, job_id: str, proc: asyncio.subprocess.Process) -> None:
        self.job_id = job_id
        self.proc = proc
        self.stderr_tail: deque[str] = deque(maxlen=30)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def spawn(cls, job_id: str, config_path: Path, on_event: EventHandler) -> WorkerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER_MODULE,
            str(config_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own session: signals to the manager's group never reach it,
            # and it outlives a killed manager (reconciled on restart).
            start_new_session=True,
            env={**os.environ, "GST_DEBUG_NO_COLOR": "1"},
        )
        worker = cls(job_id, proc)
        worker._tasks = [
            asyncio.create_task(worker._read_events(on_event), name=f"job {job_id} events"),
            asyncio.create_task(worker._read_stderr(), name=f"job {job_id} stderr"),
        ]
        return worker

    async def _read_events(self, on_event: EventHandler) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                event = WORKER_EVENT.validate_json(line)
            except ValidationError:
                log.warning(
                    "job=%s worker wrote a line that is no event: %.200r", self.job_id, line
                )
                continue
            try:
                await on_event(event)
            except Exception:
                log.exception("job=%s event handler failed on %s", self.job_id, event.event)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self.stderr_tail.append(text)
            log.debug("job=%s worker: %s", self.job_id, text)

    async def send(self, command: AddInput | RemoveInput) -> None:
        """One command line to the worker (composite inputs)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.model_dump_json(by_alias=True).encode() + b"\n")
        await self.proc.stdin.drain()

    async def wait(self) -> int:
        rc = await self.proc.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return rc

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    async def stop(self, deadline_s: float) -> str:
        """EOS (SIGINT), then after the deadline SIGTERM, then SIGKILL. Returns what it took."""
        self.signal(signal.SIGINT)
        for sig, wait_s, how in (
            (signal.SIGTERM, deadline_s, "eos"),
            (signal.SIGKILL, 3.0, "sigterm"),
        ):
            try:
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), wait_s)
                return how
            except TimeoutError:
                log.warning(
                    "job=%s worker did not stop after %s; sending %s", self.job_id, how, sig.name
                )
                self.signal(sig)
        await self.proc.wait()
        return "sigkill"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    return True


def is_worker_of(pid: int, job_id: str) -> bool:
    """Whether `pid` is a worker of ours running `job_id` (an orphan after a restart)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return WORKER_MODULE.encode() in cmdline and any(job_id.encode() in a for a in cmdline)
