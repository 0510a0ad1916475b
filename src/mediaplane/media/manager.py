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
import shutil
import signal
import time
import uuid
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mediaplane.media import jobs
from mediaplane.media.errors import BadRequest, Conflict, MediaError, NotFound, OverBudget
from mediaplane.media.models import (
    CompositeInput,
    CompositeRequest,
    Endpoint,
    InjectRequest,
    Job,
    RecordRequest,
    StreamRequest,
    TranscodeRequest,
    Transition,
    WorkerConfig,
)
from mediaplane.media.paths import confine
from mediaplane.media.process import WorkerProcess
from mediaplane.settings import Settings

log = logging.getLogger(__name__)

# Every GStreamer element a job kind builds (tests/unit/test_media_elements.py
# checks that the worker code makes no element missing from here). A kind whose
# elements are not all installed is refused with 503 naming them; the others run.
_RTP_IN = ["udpsrc", "rtpbin", "queue", "rtpopusdepay", "rtpvp8depay", "rtpvp9depay",
           "rtph264depay", "opusparse", "h264parse"]  # fmt: skip
_DECODE = ["opusdec", "vp8dec", "vp9dec", "avdec_h264", "audioconvert", "audioresample",
           "videoconvert", "capsfilter"]  # fmt: skip
_ENCODE_OUT = ["x264enc", "avenc_aac", "aacparse", "flvmux", "rtmp2sink", "hlssink2",
               "matroskamux", "webmmux", "mp4mux", "opusenc", "vp8enc", "filesink"]  # fmt: skip
ELEMENTS_BY_KIND: dict[str, list[str]] = {
    "record": [*_RTP_IN, "oggmux", "matroskamux", "webmmux", "filesink"],
    "stream": [*_RTP_IN, *_DECODE, *_ENCODE_OUT],
    "inject": ["uridecodebin", "audioconvert", "audioresample", "videoconvert", "capsfilter",
               "queue", "opusenc", "rtpopuspay", "vp8enc", "rtpvp8pay", "udpsink", "fakesink"],
    "transcode": ["filesrc", "decodebin", "queue", "audioconvert", "audioresample",
                  "videoconvert", "opusenc", "vp8enc", "x264enc", "avenc_aac", "aacparse",
                  "h264parse", "oggmux", "webmmux", "mp4mux", "matroskamux", "filesink"],
    "composite": [*_RTP_IN, *_DECODE, *_ENCODE_OUT, "compositor", "audiomixer", "textoverlay",
                  "level", "audiotestsrc", "videotestsrc"],
}  # fmt: skip
JobRequestModel = (
    RecordRequest | StreamRequest | InjectRequest | TranscodeRequest | CompositeRequest
)
MIN_FREE_BYTES = 64 * 2**20


class InsufficientStorage(MediaError):
    status = 507
    code = "insufficient_storage"


def missing_elements(names: list[str]) -> list[str]:
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    return [n for n in names if Gst.ElementFactory.find(n) is None]


def job_cost(req: Any) -> float:
    """CPU cost units; the budget (MEDIAPLANE_MEDIA_CPU_BUDGET) is their sum's limit."""
    if isinstance(req, RecordRequest):
        return 1.0 + (2.0 if req.video else 0.0)  # no transcoding: depay + mux only
    if isinstance(req, StreamRequest):
        return 25.0 if req.video else 5.0  # decode + x264/AAC encode
    if isinstance(req, InjectRequest):
        return 15.0 if req.video else 3.0
    if isinstance(req, CompositeRequest):
        # decode per track + mix + one encode that grows with the pixel rate
        pixels = 0.0 if req.audio_only else req.width * req.height * req.fps / (1280 * 720 * 30)
        return 10.0 + 40.0 * pixels
    return 30.0  # transcode runs as fast as the CPU allows


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
        self._commands: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
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

    def _advance(self, job: Job, state: Any, reason: str = "") -> None:
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
        part = Path(job.output_path + ".part") if job.output_path else None
        alive = job.pid is not None and _is_our_worker(job.pid, job.id)
        if alive and job.pid is not None:
            self._advance(
                job, "stopping", "manager restarted: stopping the orphaned worker with EOS"
            )
            os.kill(job.pid, signal.SIGINT)
            deadline = time.monotonic() + self.settings.media_stop_deadline_s
            # Not our child any more: nothing to await but its pid going away.
            while time.monotonic() < deadline and _pid_alive(job.pid):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            if _pid_alive(job.pid):
                os.kill(job.pid, signal.SIGKILL)
                await asyncio.sleep(0.1)
            kept = self._keep_file(job, part)
            self._advance(job, "completed", f"manager restarted: orphaned worker stopped, {kept}")
            return "orphan stopped and finalized"
        kept = self._keep_file(job, part)
        self._advance(job, "failed", f"worker ended while the manager was down; {kept}")
        return "worker gone; " + kept

    def _keep_file(self, job: Job, part: Path | None) -> str:
        if part is None or job.output_path is None:
            return "no file"
        final = Path(job.output_path)
        if part.is_dir() or final.is_dir():
            return f"output kept in {final}"
        if part.exists():
            os.replace(part, final)
        if final.exists():
            job.stats.bytes = final.stat().st_size
            return f"file kept at {final.name}"
        return "no data was written"

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

    def _output(self, name: str, suffix: str) -> Path:
        path = confine(self.root, name)
        if path.suffix.lower() != suffix:
            path = path.with_name(path.name + suffix)
        if path.exists() or Path(str(path) + ".part").exists():
            raise Conflict(f"{path.relative_to(self.root.resolve())} already exists")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadRequest(f"cannot create the folder for {name!r}: {e.strerror}") from None
        if not os.access(path.parent, os.W_OK):
            raise BadRequest(f"the folder for {name!r} is not writable")
        free = shutil.disk_usage(path.parent).free
        if free < MIN_FREE_BYTES:
            raise InsufficientStorage(f"only {free // 2**20} MiB free under the recordings root")
        return path

    def _hls_folder(self, name: str) -> Path:
        folder = confine(self.root, name)
        if folder.exists():
            raise Conflict(f"{name} already exists")
        folder.mkdir(parents=True)
        return folder

    async def create(self, req: JobRequestModel) -> Job:
        if absent := self.missing.get(req.kind):
            from mediaplane.media.errors import Unavailable

            raise Unavailable(
                f"GStreamer elements missing for {req.kind} jobs: {', '.join(absent)}"
            )
        cost = job_cost(req)
        self._admit(cost)
        job_id = uuid.uuid4().hex[:16]
        config = WorkerConfig(job_id=job_id, kind=req.kind, listen_ip=self.settings.media_rtp_ip)
        final: Path | None = None
        if isinstance(req, RecordRequest):
            config.audio, config.video = req.audio, req.video
            if req.video is None:
                config.container, suffix = "ogg", ".ogg"
            elif req.video.encoding_name == "H264":
                config.container, suffix = "mkv", ".mkv"
            else:
                config.container, suffix = "webm", ".webm"
            final = self._output(req.file_path, suffix)
            config.output = str(final) + ".part"
        elif isinstance(req, StreamRequest):
            config.audio, config.video = req.audio, req.video
            if req.hls_path is not None:
                final = self._hls_folder(req.hls_path)
                config.container, config.output = "hls", str(final)
                config.hls_window = req.hls_window
            else:
                config.container, config.rtmp_url = "flv", req.rtmp_url
        elif isinstance(req, CompositeRequest):
            config.composite = req
            if req.hls_path is not None:
                final = self._hls_folder(req.hls_path)
                config.container, config.output = "hls", str(final)
            elif req.rtmp_url is not None:
                config.container, config.rtmp_url = "flv", req.rtmp_url
            else:
                final = self._output(req.file_path or "", f".{req.format}")
                config.container, config.output = req.format, str(final) + ".part"
        elif isinstance(req, InjectRequest):
            config.source = (
                str(req.source_url)
                if req.source_url
                else str(confine(self.root, req.source_path or "", must_exist=True))
            )
            config.audio_target, config.video_target, config.loop = req.audio, req.video, req.loop
            config.source_timeout_s = self.settings.media_inject_timeout_s
        else:
            config.source = str(confine(self.root, req.source_path, must_exist=True))
            suffix = {"ogg-opus": ".ogg", "webm-vp8-opus": ".webm", "mp4-h264-aac": ".mp4"}[
                req.format
            ]
            final = self._output(req.file_path, suffix)
            config.output, config.transcode_format = str(final) + ".part", req.format
        job = Job(
            id=job_id,
            kind=req.kind,
            request=req.model_dump(mode="json", by_alias=True),
            output_path=str(final) if final else None,
            cost=cost,
        )
        job.history.append(Transition(state="pending", at=job.created_at, reason="admitted"))
        log.info("job=%s kind=%s state=pending cost=%.0f", job_id, job.kind, cost)
        self.jobs[job_id] = job
        self._save(job)
        for observe in self.on_transition:
            observe(job)
        config_path = self.state_dir / f"{job_id}.config.json"
        config_path.write_text(config.model_dump_json())
        self._ready[job_id] = asyncio.Event()
        worker = await WorkerProcess.spawn(job_id, config_path, lambda e: self._on_event(job, e))
        self.workers[job_id] = worker
        job.pid = worker.pid
        self._save(job)
        self._watchers[job_id] = asyncio.create_task(self._watch(job, worker), name=f"job {job_id}")
        try:
            await asyncio.wait_for(self._ready[job_id].wait(), 30)
        except TimeoutError:
            await self.stop(job_id)
            self._advance(job, "failed", "the worker did not start within 30 s")
        return job

    # events from the worker ------------------------------------------------------
    async def _on_event(self, job: Job, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "ready":
            ip = self.settings.media_rtp_ip
            job.rtp = {
                name: Endpoint(ip=ip, port=p["rtp"], rtcpPort=p["rtcp"])
                for name, p in (event.get("ports") or {}).items()
            }
            self._advance(job, "starting", f"worker pid {job.pid} ready")
            self._ready[job.id].set()
        elif kind == "first-packet":
            job.first_packet_by_stream.setdefault(str(event.get("stream")), float(event["at"]))
            if job.first_packet_at is None:
                job.first_packet_at = float(event["at"])
                job.time_to_first_packet_s = job.first_packet_at - job.created_at
                job.stats.last_packet_at = job.first_packet_at
            self._advance(job, "running", f"first {event.get('stream')} data")
            self._save(job)
        elif kind == "stats":
            received = int(event.get("packets_received") or 0)
            if received > job.stats.packets_received:
                job.stats.last_packet_at = time.time()
                if job.stats.stalled:
                    job.stats.stalled = False
                    log.info("job=%s data flows again", job.id)
            job.stats.packets_received = received
            job.stats.packets_lost = int(event.get("packets_lost") or 0)
            job.stats.duration_s = float(event.get("position_s") or 0.0)
            self._update_bytes(job)
        elif kind == "error":
            job.error = str(event.get("message"))
            log.error("job=%s pipeline error: %s", job.id, job.error)
            self._ready[job.id].set()
        elif kind == "eos":
            log.info("job=%s end of stream", job.id)
        elif kind == "loop":
            job.stats.loops = int(event.get("count") or 0)
            log.info("job=%s source starts again (loop %d)", job.id, job.stats.loops)
            self._save(job)
        elif kind in ("input-added", "input-removed", "input-error"):
            name = str(event.get("input"))
            if kind == "input-added":
                ports = event["ports"]
                ip = self.settings.media_rtp_ip
                job.rtp[name] = Endpoint(ip=ip, port=ports["rtp"], rtcpPort=ports["rtcp"])
            elif kind == "input-removed":
                job.rtp.pop(name, None)
            self._save(job)
            future = self._commands.pop((job.id, name), None)
            if future is not None and not future.done():
                future.set_result(event)
        elif kind == "keyframe-wanted":
            name = str(event.get("input"))
            job.keyframe_requests[name] = job.keyframe_requests.get(name, 0) + 1
            log.info("job=%s input=%s wants a key frame", job.id, name)
        elif kind == "active-speaker":
            job.active_speaker = event.get("participant")
            self._save(job)

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
        part = Path(job.output_path + ".part") if job.output_path else None
        if rc == 0 and job.error is None:
            kept = self._keep_file(job, part)
            how = "stopped" if job.id in self._stop_requested else "source ended"
            self._advance(job, "stopping", how)
            self._advance(job, "completed", f"{how}; {kept}")
        else:
            kept = self._keep_file(job, part)
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
    async def _command(self, job_id: str, input_id: str, cmd: dict[str, Any]) -> dict[str, Any]:
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
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._commands[(job_id, input_id)] = future
        watcher = self._watchers[job_id]
        try:
            await worker.send(cmd)
            waiting: set[asyncio.Future[Any]] = {future, watcher}
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
        if reply.get("event") == "input-error":
            raise BadRequest(f"input {input_id!r}: {reply.get('message')}")
        return reply

    async def add_input(self, job_id: str, spec: CompositeInput) -> Endpoint:
        if spec.id in self.get(job_id).rtp:
            raise Conflict(f"job {job_id} already has input {spec.id!r}")
        cmd = {"cmd": "add-input", "input": spec.model_dump(mode="json", by_alias=True)}
        await self._command(job_id, spec.id, cmd)
        log.info("job=%s input=%s added (%s)", job_id, spec.id, spec.stream.mime_type)
        return self.get(job_id).rtp[spec.id]

    async def remove_input(self, job_id: str, input_id: str) -> None:
        if input_id not in self.get(job_id).rtp:
            raise NotFound(f"job {job_id} has no input {input_id!r}")
        await self._command(job_id, input_id, {"cmd": "remove-input", "id": input_id})
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


def _pid_alive(pid: int) -> bool:
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


def _is_our_worker(pid: int, job_id: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"mediaplane.media.worker" in cmdline and any(job_id.encode() in a for a in cmdline)
