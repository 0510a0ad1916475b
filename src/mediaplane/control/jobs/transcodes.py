"""Transcodes: a finished recording to another container/codec, as a media-manager job.

The control plane asks the media manager for a `transcode` job whose source is the
recording's file and whose output sits next to it. The record lives in Redis
(`mp:transcode:{id}`, listed per recording in `mp:recording:{id}:transcodes`); a
watcher task follows the job to its end and sends `transcode.finished` or
`transcode.failed`. A record read while not ended is refreshed from the media
manager, so a restarted control plane still reports the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from pathlib import Path
from typing import ClassVar, Literal

from mediaplane.control.errors import Conflict, InvalidState, NotFound, Unavailable
from mediaplane.control.jobs.lifecycle import JobRecord, job_reason, reattach_decision
from mediaplane.control.jobs.recordings import RecordingRecord, RecordingService
from mediaplane.control.jobs.records import confined_file
from mediaplane.control.media_client import MediaClient, MediaManagerError
from mediaplane.control.tasks import OwnedTasks
from mediaplane.control.webhooks import Webhooks
from mediaplane.media.models import Job, JobState

log = logging.getLogger(__name__)

TranscodeFormat = Literal["mp4-h264-aac", "webm-vp8-opus", "ogg-opus"]
SUFFIX = {"mp4-h264-aac": ".mp4", "webm-vp8-opus": ".webm", "ogg-opus": ".ogg"}
POLL_S = 0.5


def key(transcode_id: str) -> str:
    """string: TranscodeRecord JSON."""
    return f"mp:transcode:{transcode_id}"


def recording_index(rec_id: str) -> str:
    """sorted set: transcode ids of one recording, by requested_at."""
    return f"mp:recording:{rec_id}:transcodes"


class TranscodeRecord(JobRecord):
    """Created `running` (a transcode needs no SFU plumbing: it runs once asked)."""

    noun: ClassVar[str] = "transcode"

    recording_id: str
    format: TranscodeFormat
    state: JobState = "running"
    file: str | None = None  # relative to the recordings root, once completed
    finished_at: float | None = None
    duration_s: float | None = None  # media position the job reached


class TranscodeService:
    def __init__(
        self, recordings: RecordingService, media: MediaClient, webhooks: Webhooks
    ) -> None:
        self.recordings = recordings
        self.redis = recordings.store.redis
        self.media = media
        self.webhooks = webhooks
        self.root = recordings.root
        self.tasks = OwnedTasks()

    async def close(self) -> None:
        await self.tasks.cancel()

    async def save(self, t: TranscodeRecord) -> None:
        async with self.redis.pipeline(transaction=True) as p:
            p.set(key(t.id), t.model_dump_json())
            p.zadd(recording_index(t.recording_id), {t.id: t.requested_at})
            await p.execute()

    async def start(self, room: str, rec_id: str, fmt: TranscodeFormat) -> TranscodeRecord:
        rec = await self.recordings.get(room, rec_id)
        if rec.state != "completed":
            raise InvalidState(f"recording {rec_id} is {rec.state}; only a completed one")
        source = self.recordings.file_path(rec)  # NotFound when the file is gone
        if fmt == "ogg-opus" and rec.kinds == ["audio"] and source.suffix == ".ogg":
            raise InvalidState("the recording is Ogg/Opus already")
        t = TranscodeRecord(
            id=uuid.uuid4().hex[:16], room=room, recording_id=rec_id, format=fmt,
            instance=self.recordings.instance,
        )  # fmt: skip
        t.begin()
        relative = source.relative_to(self.root.resolve())
        target = relative.with_name(f"{relative.stem}.{t.id}")  # the manager adds the suffix
        job = await self.media.create_job(
            {
                "kind": "transcode",
                "sourcePath": str(relative),
                "filePath": str(target),
                "format": fmt,
            }
        )
        t.media_job_id = job.id
        self._apply(t, job)
        await self.save(t)
        log.info(
            "transcode=%s room=%s recording=%s job=%s format=%s started",
            t.id, room, rec_id, t.media_job_id, fmt,
        )  # fmt: skip
        if t.state == "running":
            self.tasks.spawn(self._watch(t), f"transcode {t.id}")
        else:
            self._announce(t)
        return t

    def _apply(self, t: TranscodeRecord, job: Job | None) -> bool:
        """Copy the media job's outcome into the record (a job gone: failed); True when it
        just ended. The decision is the lifecycle's one for a record found unfinished."""
        if reattach_decision(t.state, job, resumable=True) != "finish":
            return False
        t.finished_at = time.time()
        t.duration_s = job.stats.duration_s if job else None
        if job is not None and job.state == "completed" and job.output_path:
            path = Path(job.output_path).resolve()
            if path.is_file() and path.is_relative_to(self.root.resolve()):
                t.file = str(path.relative_to(self.root.resolve()))
                t.stopped_at = t.finished_at
                t.advance("completed", job_reason(job))
                return True
            t.error = "the media job completed but its file is missing"
        elif job is not None:
            t.error = job.error or f"media job {job.state}"
        else:
            t.error = "its media job is gone"
        t.stopped_at = t.finished_at
        t.advance("failed", t.error)
        return True

    def _announce(self, t: TranscodeRecord) -> None:
        event = "transcode.finished" if t.state == "completed" else "transcode.failed"
        log.info("transcode=%s job=%s %s %s", t.id, t.media_job_id, t.state, t.error or "")
        self.webhooks.emit(event, t.model_dump(mode="json"))

    async def _watch(self, t: TranscodeRecord) -> None:
        assert t.media_job_id is not None
        while t.state == "running":
            await asyncio.sleep(POLL_S)
            try:
                job = await self.media.get(t.media_job_id)
            except (MediaManagerError, Unavailable) as e:
                log.warning("transcode=%s cannot read job %s: %s", t.id, t.media_job_id, e)
                continue
            if self._apply(t, job):
                await self.save(t)
                self._announce(t)

    async def get(self, room: str, rec_id: str, transcode_id: str) -> TranscodeRecord:
        raw = await self.redis.get(key(transcode_id))
        if raw is None:
            raise NotFound(f"no transcode {transcode_id!r}")
        t = TranscodeRecord.model_validate_json(raw)
        if t.room != room or t.recording_id != rec_id:
            raise NotFound(f"no transcode {transcode_id!r} of recording {rec_id!r}")
        if t.state == "running" and t.media_job_id is not None:
            with contextlib.suppress(MediaManagerError, Unavailable):
                if self._apply(t, await self.media.get(t.media_job_id)):
                    await self.save(t)
        return t

    async def list(self, room: str, rec_id: str) -> list[TranscodeRecord]:
        rec: RecordingRecord = await self.recordings.get(room, rec_id)
        ids = await self.redis.zrange(recording_index(rec.id), 0, -1)
        return [await self.get(room, rec_id, str(i)) for i in ids]

    async def delete_of(self, room: str, rec_id: str) -> None:
        """Delete a recording's transcodes (files and records); 409 while one runs."""
        done = await self.list(room, rec_id)
        running = [t.id for t in done if t.state == "running"]
        if running:
            raise Conflict(f"transcode {running[0]} of recording {rec_id} is running")
        for t in done:
            if t.file is not None:
                with contextlib.suppress(NotFound, FileNotFoundError):
                    self.file_path(t).unlink()
            await self.redis.delete(key(t.id))
        await self.redis.delete(recording_index(rec_id))

    def file_path(self, t: TranscodeRecord) -> Path:
        return confined_file(self.root, t.file, f"transcode {t.id} ({t.state})")
