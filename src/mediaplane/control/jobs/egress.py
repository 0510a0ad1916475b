"""Egress: a room (or one participant) composited and sent to a file, an RTMP server or HLS.

One media-manager `composite` job per egress. The control plane feeds it
track by track: a plain transport per track on the room's router -> consume
(paused) -> `POST /jobs/{id}/inputs` answers with the ports -> connect ->
resume -> key frames (plumbing.py). It follows the room: a new producer becomes a tile (or
joins the mix), a closed one leaves it. A participant egress ends when the
participant leaves; a room egress ends when the room has been empty for
`EMPTY_GRACE_S` or is deleted. States (lifecycle.py, docs/job-lifecycle.md):

    starting -> running -> stopping -> completed | failed

Ownership: the instance that started an egress owns its SFU objects and its
watcher task (it polls the job, so a job that fails on its own, e.g. an RTMP
server that goes away, fails the egress with the job's reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mediaplane.control.errors import BadRequest, Conflict, InvalidState, NotFound, Unavailable
from mediaplane.control.jobs.lifecycle import JobRecord, JobService, Step, job_reason
from mediaplane.control.jobs.plumbing import Feed, KeyFrameRelay, open_feed, request_key_frames
from mediaplane.control.jobs.records import RecordStore, confined_file
from mediaplane.control.media_client import MediaClient, MediaManagerError
from mediaplane.control.rooms import RoomManager
from mediaplane.control.urls import redact_stream_key
from mediaplane.control.webhooks import Webhooks
from mediaplane.media.models import CompositeRequest, HlsWindow, Job, RtmpUrl
from mediaplane.sfu import SfuClient
from mediaplane.state.models import ProducerRecord
from mediaplane.url_guard import OutboundPolicy, OutboundRefused, check_url
from mediaplane.wire.ids import Identity, Json
from mediaplane.wire.room_events import (
    NewProducer,
    PeerJoined,
    PeerLeft,
    ProducerClosed,
    RoomDeleted,
    RoomEvent,
)

log = logging.getLogger(__name__)

INDEX = "mp:egresses"  # sorted set: egress id by requested_at
EMPTY_GRACE_S = 10.0
POLL_S = 0.5


def key(egress_id: str) -> str:
    """string: EgressRecord JSON."""
    return f"mp:egress:{egress_id}"


def _as_the_manager(name: str) -> Any:
    """A field of the manager's `CompositeRequest` (constraints, default, alias), not a copy."""
    return CompositeRequest.model_fields[name]


class EgressRequest(BaseModel):
    """What a client asks for (the REST body, validated once here): who to follow and
    where to send it; how it looks are the manager's composite fields."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: Literal["room", "participant"] = Field(
        default="room", description="room: everyone, following joins and leaves"
    )
    identity: Identity | None = None
    output: Literal["file", "rtmp", "hls"] = "file"
    format: Literal["mp4", "mkv", "webm"] = _as_the_manager("format")
    rtmp_url: RtmpUrl | None = _as_the_manager("rtmp_url")
    hls_window: HlsWindow = _as_the_manager("hls_window")
    width: int = _as_the_manager("width")
    height: int = _as_the_manager("height")
    fps: int = _as_the_manager("fps")
    video_kbps: int = _as_the_manager("video_kbps")
    audio_only: bool = _as_the_manager("audio_only")

    @model_validator(mode="after")
    def _consistent(self) -> EgressRequest:
        if (self.output == "rtmp") != (self.rtmp_url is not None):
            raise ValueError("rtmpUrl is required for output 'rtmp' and only for it")
        if self.hls_window and self.output != "hls":
            raise ValueError("hlsWindow is for output 'hls' only")
        if self.source == "participant" and self.identity is None:
            raise ValueError("source 'participant' needs an identity")
        return self

    def job_body(self, name: str) -> Json:
        """The media manager's `composite` request, its outputs named `name`."""
        body: Json = {
            "kind": "composite", "width": self.width, "height": self.height, "fps": self.fps,
            "videoKbps": self.video_kbps, "audioOnly": self.audio_only,
        }  # fmt: skip
        if self.output == "file":
            body.update(filePath=name, format=self.format)
        elif self.output == "hls":
            body.update(hlsPath=name, hlsWindow=self.hls_window)
        else:
            body["rtmpUrl"] = self.rtmp_url
        return body


class EgressRecord(JobRecord):
    noun: ClassVar[str] = "egress"

    source: Literal["room", "participant"]
    identity: str | None = None
    output: Literal["file", "rtmp", "hls"]
    format: str | None = None
    rtmp_target: str | None = None  # the RTMP URL without its stream key
    width: int
    height: int
    fps: int
    audio_only: bool = False
    file: str | None = None  # relative to the recordings root (file output)
    hls_folder: str | None = None  # relative to the recordings root (HLS output)
    hls_window: int = 0  # HLS: segments in the live playlist (0: every segment)
    tracks: list[str] = Field(default_factory=list)  # producer ids in the mix now
    active_speaker: str | None = None
    duration_s: float | None = None
    size_bytes: int | None = None


@dataclass
class Active:
    record: EgressRecord
    router_id: str
    sfu: SfuClient  # the SFU node hosting the room's router
    tracks: dict[str, Feed] = field(default_factory=dict)  # producer id -> its feed
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    watcher: asyncio.Task[None] | None = None
    empty_timer: asyncio.Task[None] | None = None
    stopping: bool = False
    key_frames: KeyFrameRelay = field(default_factory=KeyFrameRelay)


class EgressService(JobService[EgressRecord]):
    event = "egress"
    poll_s = POLL_S

    def __init__(
        self,
        rooms: RoomManager,
        media: MediaClient,
        webhooks: Webhooks,
        recordings_root: Path,
        outbound: OutboundPolicy,
    ) -> None:
        records = RecordStore(rooms.store.redis, EgressRecord, "egress", key, INDEX)
        super().__init__(rooms, media, webhooks, recordings_root, records)
        self.outbound = outbound
        self.active: dict[str, Active] = {}
        self.empty_grace_s = EMPTY_GRACE_S

    def listen(self) -> None:
        self.rooms.room_listeners.append(self._on_room_event)

    def live(self) -> list[str]:
        return list(self.active)

    # files ------------------------------------------------------------------------
    def file_path(self, rec: EgressRecord) -> Path:
        return confined_file(self.root, rec.file, f"egress {rec.id}")

    def hls_file(self, rec: EgressRecord, name: str) -> Path:
        if rec.hls_folder is None:
            raise NotFound(f"egress {rec.id} is not an HLS stream")
        folder = (self.root / rec.hls_folder).resolve()
        path = (folder / name).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            raise NotFound(f"no {name} in egress {rec.id} (yet)")
        return path

    # starting ---------------------------------------------------------------------------
    async def start(self, room: str, req: EgressRequest) -> EgressRecord:
        room_rec = await self.rooms.get_room(room)
        if req.rtmp_url is not None:
            try:  # the media worker checks the connection again when it makes it
                await check_url(req.rtmp_url, self.outbound)
            except OutboundRefused as e:
                log.info("room=%s egress target refused: %s", room, redact_stream_key(req.rtmp_url))
                raise BadRequest(f"rtmpUrl: {e}") from None
        if req.source == "participant":
            if req.identity is None:
                raise InvalidState("give the identity of the participant, or source 'room'")
            if not any(p.identity == req.identity for p in await self.store.list_peers(room)):
                raise NotFound(f"participant {req.identity!r} is not in room {room!r}")
        if room_rec.router_id is None:
            raise InvalidState(f"room {room!r} has no media router (nobody has joined)")
        if req.output == "rtmp" and req.rtmp_url is None:
            raise InvalidState("an rtmp output needs rtmpUrl")
        rec = EgressRecord(
            id=uuid.uuid4().hex[:16], room=room, source=req.source,
            identity=req.identity if req.source == "participant" else None,
            output=req.output, format=req.format if req.output == "file" else None,
            rtmp_target=redact_stream_key(req.rtmp_url) if req.rtmp_url else None,
            width=req.width, height=req.height, fps=req.fps, audio_only=req.audio_only,
            hls_window=req.hls_window if req.output == "hls" else 0,
            instance=self.instance,
        )  # fmt: skip
        rec.begin()
        name = f"egress/{room}/{(req.identity or 'room')}-{rec.id}"
        active = Active(rec, router_id=room_rec.router_id, sfu=await self.rooms.room_sfu(room))
        # A refusal here (429 over budget or no manager up, 507 no disk, 400) is the
        # caller's answer, and no egress exists.
        job = await self.media.create_job(req.job_body(name))
        self.active[rec.id] = active
        try:
            rec.media_job_id = job.id
            if job.state == "failed":
                raise InvalidState(f"the media job failed to start: {job.error}")
            if job.output_path:
                relative = str(Path(job.output_path).resolve().relative_to(self.root.resolve()))
                if req.output == "hls":
                    rec.hls_folder = relative
                else:
                    rec.file = relative
            await self.save(rec)
            async with active.lock:
                for producer in await self._wanted(rec):
                    await self._add_track(active, producer)
        except asyncio.CancelledError:
            await self._finish(active, False, "start cancelled")
            raise
        except Exception as e:
            # The egress exists from here on: its failure is its state, as when it fails
            # later (an RTMP server that refuses may do so before or after this point).
            log.warning("egress=%s room=%s start failed: %s", rec.id, room, e)
            if rec.media_job_id is not None:
                with contextlib.suppress(MediaManagerError, Unavailable):
                    await self.media.stop(rec.media_job_id)  # 409 when it ended already
            await self._finish(active, False, f"start failed: {e}")
            return rec
        active.watcher = self.tasks.spawn(self.watch(rec, self._step(active), retry_s=2))
        self.emit(rec, "started")
        return rec

    async def _wanted(self, rec: EgressRecord) -> list[ProducerRecord]:
        return [p for p in await self.store.list_producers(rec.room) if self._wants(rec, p)]

    @staticmethod
    def _wants(rec: EgressRecord, producer: ProducerRecord) -> bool:
        return (rec.identity is None or producer.identity == rec.identity) and not (
            rec.audio_only and producer.kind == "video"
        )

    async def _add_track(self, active: Active, producer: ProducerRecord) -> None:
        rec = active.record
        if producer.producer_id in active.tracks or rec.media_job_id is None:
            return
        names = {p.peer_id: p.name for p in await self.store.list_peers(rec.room)}
        source = await self.rooms.usable_producer(rec.room, active.sfu, producer, active.router_id)
        feed = await open_feed(active.sfu, active.router_id, source, {"egress": rec.id})
        active.tracks[producer.producer_id] = feed
        try:
            label = names.get(producer.peer_id) or producer.identity
            if producer.source == "screen":
                label += " (screen)"
            ep = await self.media.add_input(rec.media_job_id, {
                "id": producer.producer_id, "participant": producer.identity,
                "name": label[:64], "stream": feed.stream,
            })  # fmt: skip
            await feed.connect(ep)
        except BaseException:
            active.tracks.pop(producer.producer_id, None)
            await feed.close()
            raise
        rec.tracks.append(producer.producer_id)
        await self.save(rec)
        if producer.kind == "video":
            self.tasks.spawn(request_key_frames(active.sfu, feed.consumer_id, 4, 0.4))
        log.info(
            "egress=%s room=%s track added producer=%s identity=%s kind=%s",
            rec.id, rec.room, producer.producer_id, producer.identity, producer.kind,
        )  # fmt: skip

    async def _remove_track(self, active: Active, producer_id: str) -> None:
        feed = active.tracks.pop(producer_id, None)
        if feed is None:
            return
        rec = active.record
        if rec.media_job_id is not None:
            with contextlib.suppress(Exception):
                await self.media.remove_input(rec.media_job_id, producer_id)
        await feed.close()
        if producer_id in rec.tracks:
            rec.tracks.remove(producer_id)
        await self.save(rec)
        log.info("egress=%s room=%s track removed producer=%s", rec.id, rec.room, producer_id)

    # following the room --------------------------------------------------------------------
    async def _on_room_event(self, event: RoomEvent) -> None:
        for active in list(self.active.values()):
            rec = active.record
            if rec.room != event.room or active.stopping:
                continue
            if isinstance(event, NewProducer):
                producer = ProducerRecord(
                    producer_id=event.producer_id, peer_id=event.peer_id,
                    identity=event.identity, kind=event.kind, source=event.source,
                )  # fmt: skip
                if self._wants(rec, producer):
                    self.tasks.spawn(self._follow_add(active, producer))
            elif isinstance(event, ProducerClosed) and event.producer_id in active.tracks:
                self.tasks.spawn(self._follow_remove(active, event.producer_id))
            elif isinstance(event, PeerLeft):
                self.tasks.spawn(self._after_leave(active))
            elif isinstance(event, PeerJoined) and active.empty_timer is not None:
                active.empty_timer.cancel()
                active.empty_timer = None
            elif isinstance(event, RoomDeleted):
                self.tasks.spawn(self._stop_quietly(rec.id, "the room was deleted"))

    async def _follow_add(self, active: Active, producer: ProducerRecord) -> None:
        async with active.lock:
            if active.stopping:
                return
            try:
                await self._add_track(active, producer)
            except Exception as e:
                log.warning("egress=%s could not add %s: %s", active.record.id, producer, e)

    async def _follow_remove(self, active: Active, producer_id: str) -> None:
        async with active.lock:
            if not active.stopping:
                await self._remove_track(active, producer_id)

    async def _after_leave(self, active: Active) -> None:
        rec = active.record
        peers = await self.store.list_peers(rec.room)
        if rec.identity is not None:
            if not any(p.identity == rec.identity for p in peers):
                await self._stop_quietly(rec.id, "the participant left")
        elif not peers and active.empty_timer is None:
            active.empty_timer = self.tasks.spawn(self._empty(active))

    async def _empty(self, active: Active) -> None:
        await asyncio.sleep(self.empty_grace_s)
        if not await self.store.list_peers(active.record.room):
            await self._stop_quietly(active.record.id, "the room stayed empty")

    # the job's life ---------------------------------------------------------------------------
    def _step(self, active: Active) -> Step:
        rec = active.record

        async def step(job: Job) -> bool:
            if active.stopping:
                return False
            if job.state == "running" and rec.state == "starting":
                rec.started_at = job.first_packet_at
                rec.advance("running", "media flows")
                await self.save(rec)
            await self._relay_key_frames(active, job)
            if job.active_speaker != rec.active_speaker:
                rec.active_speaker = job.active_speaker
                await self.save(rec)
            if job.terminal:
                ok = job.state == "completed"
                await self._end(active, job, ok, f"the job ended: {job_reason(job)}")
                return False
            return True

        return step

    async def _relay_key_frames(self, active: Active, job: Job) -> None:
        consumers = {producer_id: f.consumer_id for producer_id, f in active.tracks.items()}
        for producer_id, count in await active.key_frames.relay(active.sfu, job, consumers):
            log.info(
                "egress=%s room=%s producer=%s key frame requested: the mix lost data (%d)",
                active.record.id, active.record.room, producer_id, count,
            )  # fmt: skip

    async def stop(self, egress_id: str, reason: str) -> EgressRecord:
        active = self.active.get(egress_id)
        if active is None:
            if (stored := await self.load(egress_id)) is not None:
                raise Conflict(f"egress {egress_id} is already {stored.state}")
            raise NotFound(f"no egress {egress_id!r}")
        if active.stopping:
            raise Conflict(f"egress {egress_id} is already stopping")
        active.stopping = True
        rec = active.record
        rec.advance("stopping", reason)
        await self.save(rec)
        job = await self.stop_job(rec)
        ok = job is not None and job.state == "completed"
        why = job_reason(job)
        await self._end(active, job, ok, f"{reason}; job: {why}" if why else reason)
        return rec

    async def _end(self, active: Active, job: Job | None, ok: bool, reason: str) -> None:
        active.stopping = True
        rec = active.record
        if job is not None:
            rec.duration_s = job.stats.duration_s
            rec.size_bytes = job.stats.bytes or None
        else:
            rec.duration_s = rec.size_bytes = None
        await self._finish(active, ok, reason)

    async def _finish(self, active: Active, ok: bool, reason: str) -> None:
        rec = active.record
        if self.active.pop(rec.id, None) is None:
            return  # already finished
        for t in (active.watcher, active.empty_timer):
            if t is not None and t is not asyncio.current_task():
                t.cancel()
        for feed in list(active.tracks.values()):
            await feed.close()
        active.tracks.clear()
        rec.tracks.clear()
        await self.finish(rec, ok, reason)

    async def _stop_quietly(self, egress_id: str, reason: str) -> None:
        with contextlib.suppress(Conflict, NotFound):
            await self.stop(egress_id, reason)
