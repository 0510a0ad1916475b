"""Spawn, watch and stop one worker process (argv, never a shell)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


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
            "mediaplane.media.worker",
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
                event = json.loads(line)
            except ValueError:
                log.warning("job=%s worker wrote a non-JSON line: %.200r", self.job_id, line)
                continue
            try:
                await on_event(event)
            except Exception:
                log.exception("job=%s event handler failed on %s", self.job_id, event.get("event"))

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self.stderr_tail.append(text)
            log.debug("job=%s worker: %s", self.job_id, text)

    async def send(self, command: dict[str, Any]) -> None:
        """One command line to the worker (composite inputs)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
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
