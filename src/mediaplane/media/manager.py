"""Jobs: admission, one worker process each, the lifecycle, files that are never lost.

Ownership: JobManager owns every WorkerProcess and one watcher task per job
(it awaits the process's exit and settles the job), plus the stall watchdog.
close() stops all jobs by EOS, so a shutdown finishes recordings.

Files: a worker writes `<name>.part` in a crash-safe container (Ogg pages,
streamable Matroska/WebM, unbuffered writes). On a clean EOS the manager
renames it to `<name>`; when the worker dies, the partial file is renamed too
(it decodes up to the death) and the job fails saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from pathlib import Path
from typing import assert_never

from mediaplane.media import jobs
from mediaplane.media.configs import job_cost, worker_config
from mediaplane.media.errors import BadRequest, Conflict, NotFound, OverBudget, Unavailable
from mediaplane.media.files import keep_output
from mediaplane.media.process import WorkerProcess, is_worker_of, pid_alive
from mediaplane.media.worker.gst import missing_elements
from mediaplane.media.worker.kinds import ELEMENTS_BY_KIND
from mediaplane.settings import Settings
from mediaplane.wire.media import (
    ActiveSpeaker,
    AddInput,
    AnyJobRequest,
    AnyWorkerConfig,
    AnyWorkerEvent,
    CompositeInput,
    Endpoint,
    Eos,
    FirstPacket,
    InputAdded,
    InputError,
    InputRemoved,
    InputReply,
    Job,
    JobState,
    KeyframeWanted,
    Looped,
    PipelineError,
    PipelineWarning,
    Ready,
    RemoveInput,
    Stats,
    Transition,
)

log = logging.getLogger(__name__)

__all__ = ["ELEMENTS_BY_KIND", "JobManager", "missing_elements"]


class JobManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.recordings_dir
        self.state_dir = settings.media_state_dir
        self.jobs: dict[str, Job] = {}
        self.workers: dict[str, WorkerProcess] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._stop_requested: set[str] = set()
        self._final_paths: dict[str, Path] = {}
        self._commands: dict[tuple[str, str], asyncio.Future[InputReply]] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self.missing: dict[str, list[str]] = {}  # job kind -> its elements not installed
        self.reconciled: list[str] = []
        # Called with each job that moved to a new state (metrics).
        self.on_transition: list[Callable[[Job], None]] = []

    # lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for kind, names in ELEMENTS_BY_KIND.items():
            if absent := missing_elements(names):
                self.missing[kind] = absent
                log.error(
                    "GStreamer elements missing for %s jobs: %s (./mediaplane up installs "
                    "them; see scripts/bootstrap.sh)",
                    kind,
                    ", ".join(absent),
                )
        await self.reconcile()
        self._watchdog = asyncio.create_task(self._watch_stalls(), name="stall-watchdog")

    async def close(self) -> None:
        """Stop every job by EOS (recordings are finished, not cut)."""
        await asyncio.gather(
            *(
                self.stop(j.id)
                for j in list(self.jobs.values())
                if not j.terminal and j.id in self.workers
            ),
            return_exceptions=True,
        )
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog

    # persistence ----------------------------------------------------------------
    def _save(self, job: Job) -> None:
        path = self.state_dir / f"{job.id}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(job.model_dump_json(by_alias=True))
        os.replace(tmp, path)

    def _advance(self, job: Job, state: JobState, reason: str = "") -> None:
        if jobs.advance(job, state, reason):
            self._save(job)
            for observe in self.on_transition:
                observe(job)

    async def reconcile(self) -> None:
        """Settle the jobs a previous manager left unfinished."""
        for path in sorted(self.state_dir.glob("*.json")):
            try:
                job = Job.model_validate_json(path.read_text())
            except ValueError:
                log.error("unreadable job record %s; left in place", path)
                continue
            self.jobs[job.id] = job
            if job.terminal:
                continue
            note = await self._settle_orphan(job)
            self.reconciled.append(f"{job.id}: {note}")

    async def _settle_orphan(self, job: Job) -> str:
        alive = job.pid is not None and is_worker_of(job.pid, job.id)
        if alive and job.pid is not None:
            self._advance(
                job, "stopping", "manager restarted: stopping the orphaned worker with EOS"
            )
            os.kill(job.pid, signal.SIGINT)
            deadline = time.monotonic() + self.settings.media_stop_deadline_s
            # Not our child any more: nothing to await but its pid going away.
            while time.monotonic() < deadline and pid_alive(job.pid):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            if pid_alive(job.pid):
                os.kill(job.pid, signal.SIGKILL)
                await asyncio.sleep(0.1)
            kept = keep_output(job)
            self._advance(job, "completed", f"manager restarted: orphaned worker stopped, {kept}")
            return "orphan stopped and finalized"
        kept = keep_output(job)
        self._advance(job, "failed", f"worker ended while the manager was down; {kept}")
        return "worker gone; " + kept

    # creating jobs --------------------------------------------------------------
    def load(self) -> tuple[float, list[str]]:
        """(cost units in use, ids of the jobs not yet ended): what the heartbeat reports."""
        running = [j for j in self.jobs.values() if not j.terminal]
        return sum(j.cost for j in running), [j.id for j in running]

    def _admit(self, cost: float) -> None:
        used, _ = self.load()
        budget = self.settings.media_cpu_budget
        if used + cost > budget:
            raise OverBudget(
                f"over the CPU budget: {used:.0f} of {budget:.0f} units in use, this job needs "
                f"{cost:.0f}; retry when a job ends"
            )

    async def create(self, req: AnyJobRequest) -> Job:
        """Admit a job, start its worker and answer once it is ready (or failed)."""
        if absent := self.missing.get(req.kind):
            raise Unavailable(
                f"GStreamer elements missing for {req.kind} jobs: {', '.join(absent)}"
            )
        cost = job_cost(req)
        self._admit(cost)
        job_id = uuid.uuid4().hex[:16]
        config, final = worker_config(req, job_id, self.settings)
        job = Job(
            id=job_id,
            kind=req.kind,
            request=req.model_dump(mode="json", by_alias=True),
            output_path=str(final) if final else None,
            cost=cost,
        )
        self._record_admitted(job)
        await self._launch(job, config)
        return job

    def _record_admitted(self, job: Job) -> None:
        job.history.append(Transition(state="pending", at=job.created_at, reason="admitted"))
        log.info("job=%s kind=%s state=pending cost=%.0f", job.id, job.kind, job.cost)
        self.jobs[job.id] = job
        self._save(job)
        for observe in self.on_transition:
            observe(job)

    async def _launch(self, job: Job, config: AnyWorkerConfig) -> None:
        """Spawn the job's worker and its watcher; wait for `ready` (30 s at most)."""
        config_path = self.state_dir / f"{job.id}.config.json"
        config_path.write_text(config.model_dump_json())
        self._ready[job.id] = asyncio.Event()
        worker = await WorkerProcess.spawn(job.id, config_path, lambda e: self._on_event(job, e))
        self.workers[job.id] = worker
        job.pid = worker.pid
        self._save(job)
        self._watchers[job.id] = asyncio.create_task(self._watch(job, worker), name=f"job {job.id}")
        try:
            await asyncio.wait_for(self._ready[job.id].wait(), 30)
        except TimeoutError:
            await self.stop(job.id)
            self._advance(job, "failed", "the worker did not start within 30 s")

    # events from the worker ------------------------------------------------------
    async def _on_event(self, job: Job, event: AnyWorkerEvent) -> None:
        """The one dispatch over what a worker says (wire.media.WorkerEvent)."""
        match event:
            case Ready():
                self._on_ready(job, event)
            case FirstPacket():
                self._on_first_packet(job, event)
            case Stats():
                self._on_stats(job, event)
            case PipelineError():
                job.error = event.message
                said = f" (the pipeline said: {event.detail})" if event.detail else ""
                where = f" [{event.debug}]" if event.debug else ""  # GStreamer's debug line
                log.error("job=%s pipeline error: %s%s%s", job.id, job.error, said, where)
                self._ready[job.id].set()
            case PipelineWarning():
                pass
            case Eos():
                log.info("job=%s end of stream", job.id)
            case Looped():
                job.stats.loops = event.count
                log.info("job=%s source starts again (loop %d)", job.id, job.stats.loops)
                self._save(job)
            case InputAdded() | InputRemoved() | InputError():
                self._on_input_reply(job, event)
            case KeyframeWanted():
                job.keyframe_requests[event.input] = job.keyframe_requests.get(event.input, 0) + 1
                log.info("job=%s input=%s wants a key frame", job.id, event.input)
            case ActiveSpeaker():
                job.active_speaker = event.participant
                self._save(job)
            case _:
                assert_never(event)

    def _on_ready(self, job: Job, event: Ready) -> None:
        ip = self.settings.media_rtp_ip
        job.rtp = {
            name: Endpoint(ip=ip, port=p.rtp, rtcpPort=p.rtcp) for name, p in event.ports.items()
        }
        self._advance(job, "starting", f"worker pid {job.pid} ready")
        self._ready[job.id].set()

    def _on_first_packet(self, job: Job, event: FirstPacket) -> None:
        job.first_packet_by_stream.setdefault(event.stream, event.at)
        if job.first_packet_at is None:
            job.first_packet_at = event.at
            job.time_to_first_packet_s = job.first_packet_at - job.created_at
            job.stats.last_packet_at = job.first_packet_at
        self._advance(job, "running", f"first {event.stream} data")
        self._save(job)

    def _on_stats(self, job: Job, event: Stats) -> None:
        if event.packets_received > job.stats.packets_received:
            job.stats.last_packet_at = time.time()
            if job.stats.stalled:
                job.stats.stalled = False
                log.info("job=%s data flows again", job.id)
        job.stats.packets_received = event.packets_received
        job.stats.packets_lost = event.packets_lost
        job.stats.duration_s = event.position_s
        self._update_bytes(job)

    def _on_input_reply(self, job: Job, event: InputReply) -> None:
        """A composite's answer to a command: the job's ports change, the caller is told."""
        if isinstance(event, InputAdded):
            ip = self.settings.media_rtp_ip
            job.rtp[event.input] = Endpoint(ip=ip, port=event.ports.rtp, rtcpPort=event.ports.rtcp)
        elif isinstance(event, InputRemoved):
            job.rtp.pop(event.input, None)
        self._save(job)
        future = self._commands.pop((job.id, event.input), None)
        if future is not None and not future.done():
            future.set_result(event)

    def _update_bytes(self, job: Job) -> None:
        if job.output_path:
            for p in (Path(job.output_path + ".part"), Path(job.output_path)):
                with contextlib.suppress(OSError):
                    if p.is_file():
                        job.stats.bytes = p.stat().st_size

    async def _watch(self, job: Job, worker: WorkerProcess) -> None:
        rc = await worker.wait()
        self.workers.pop(job.id, None)
        self._update_bytes(job)
        if rc == 0 and job.error is None:
            kept = keep_output(job)
            how = "stopped" if job.id in self._stop_requested else "source ended"
            self._advance(job, "stopping", how)
            self._advance(job, "completed", f"{how}; {kept}")
        else:
            kept = keep_output(job)
            if job.error:
                why = job.error
            elif rc < 0:
                why = f"worker killed by signal {signal.Signals(-rc).name}"
            else:
                tail = worker.stderr_tail[-1] if worker.stderr_tail else ""
                why = f"worker exited with code {rc} {tail}".strip()
            self._advance(job, "failed", f"{why}; {kept}")
        self._ready.get(job.id, asyncio.Event()).set()
        with contextlib.suppress(OSError):
            (self.state_dir / f"{job.id}.config.json").unlink()

    async def _watch_stalls(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            for job in self.jobs.values():
                if job.state != "running" or job.kind not in ("record", "stream"):
                    continue
                last = job.stats.last_packet_at or job.first_packet_at
                if (
                    last
                    and now - last > self.settings.media_stall_timeout_s
                    and not job.stats.stalled
                ):
                    job.stats.stalled = True
                    log.warning("job=%s stalled: no data for %.1f s", job.id, now - last)

    # queries and stop -------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def list(self, kind: str | None = None, state: str | None = None) -> list[Job]:
        return [
            j for j in sorted(self.jobs.values(), key=lambda j: j.created_at)
            if (kind is None or j.kind == kind) and (state is None or j.state == state)
        ]  # fmt: skip

    # composite inputs -------------------------------------------------------------
    async def _command(self, job_id: str, input_id: str, cmd: AddInput | RemoveInput) -> InputReply:
        job = self.get(job_id)
        worker = self.workers.get(job_id)
        if job.kind != "composite":
            raise BadRequest(f"job {job_id} is a {job.kind} job, not a composite")
        if job.terminal or worker is None or job.state == "stopping":
            # With the job's error: a composite that failed on its own (an RTMP server that
            # refused) before its first input must say why, not only that it failed.
            raise Conflict(f"job {job_id} is {job.state}: {job.error or ''}".rstrip(": "))
        if (job_id, input_id) in self._commands:
            raise Conflict(f"a change of input {input_id!r} is under way")
        future: asyncio.Future[InputReply] = asyncio.get_running_loop().create_future()
        self._commands[(job_id, input_id)] = future
        watcher = self._watchers[job_id]
        try:
            await worker.send(cmd)
            waiting: set[asyncio.Future[InputReply] | asyncio.Task[None]] = {future, watcher}
            await asyncio.wait(waiting, timeout=10, return_when=FIRST_COMPLETED)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the worker is gone; its watcher settles the job
        finally:
            self._commands.pop((job_id, input_id), None)
        if not future.done():
            future.cancel()
            if watcher.done():
                raise Conflict(f"job {job_id} ended ({job.state}): {job.error or ''}".rstrip(": "))
            raise Conflict(f"job {job_id} did not answer about input {input_id!r} in 10 s")
        reply = future.result()
        if isinstance(reply, InputError):
            raise BadRequest(f"input {input_id!r}: {reply.message}")
        return reply

    async def add_input(self, job_id: str, spec: CompositeInput) -> Endpoint:
        if spec.id in self.get(job_id).rtp:
            raise Conflict(f"job {job_id} already has input {spec.id!r}")
        await self._command(job_id, spec.id, AddInput(input=spec))
        log.info("job=%s input=%s added (%s)", job_id, spec.id, spec.stream.mime_type)
        return self.get(job_id).rtp[spec.id]

    async def remove_input(self, job_id: str, input_id: str) -> None:
        if input_id not in self.get(job_id).rtp:
            raise NotFound(f"job {job_id} has no input {input_id!r}")
        await self._command(job_id, input_id, RemoveInput(id=input_id))
        log.info("job=%s input=%s removed", job_id, input_id)

    async def stop(self, job_id: str) -> Job:
        job = self.get(job_id)
        worker = self.workers.get(job_id)
        if job.terminal or worker is None or job_id in self._stop_requested:
            raise Conflict(f"job {job_id} is already {job.state}")
        self._stop_requested.add(job_id)
        self._advance(job, "stopping", "stop requested")
        how = await worker.stop(self.settings.media_stop_deadline_s)
        await asyncio.shield(self._watchers[job_id])
        if how != "eos":
            log.warning("job=%s needed %s to stop", job_id, how)
        return job
