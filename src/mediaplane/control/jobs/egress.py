"""Egress: a room (or one participant) composited and sent to a file, an RTMP server or HLS.

One media-manager `composite` job per egress. The control plane feeds it
track by track: a plain transport per track on the room's router -> consume
(paused) -> `POST /jobs/{id}/inputs` answers with the ports -> connect ->
resume -> key frames. It follows the room: a new producer becomes a tile (or
joins the mix), a closed one leaves it. A participant egress ends when the
participant leaves; a room egress ends when the room has been empty for
`EMPTY_GRACE_S` or is deleted. States only move forward:

    starting -> active -> stopping -> completed | failed

Ownership: the instance that started an egress owns its SFU objects and its
watcher task (it polls the job, so a job that fails on its own, e.g. an RTMP
server that goes away, fails the egress with the job's reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mediaplane.control.errors import Conflict, InvalidState, NotFound, Unavailable
from mediaplane.control.jobs.records import RecordStore, StoredRecord, confined_file
from mediaplane.control.media_client import (
    KeyFrameRelay,
    MediaClient,
    MediaManagerError,
    consumer_stream,
)
from mediaplane.control.rooms import RoomManager
from mediaplane.control.tasks import OwnedTasks
from mediaplane.control.urls import redact_stream_key
from mediaplane.control.webhooks import Webhooks
from mediaplane.sfu import SfuClient, SfuError
from mediaplane.state.models import ProducerRecord

log = logging.getLogger(__name__)

EgressState = Literal["starting", "active", "stopping", "completed", "failed"]
ORDER = {"starting": 0, "active": 1, "stopping": 2, "completed": 3, "failed": 3}
INDEX = "mp:egresses"  # sorted set: egress id by requested_at
EMPTY_GRACE_S = 10.0
POLL_S = 0.5


def key(egress_id: str) -> str:
    """string: EgressRecord JSON."""
    return f"mp:egress:{egress_id}"


class EgressTransition(BaseModel):
    state: EgressState
    at: float
    reason: str = ""


class EgressRequest(BaseModel):
    """What a client asks for (validated by the REST layer)."""

    source: Literal["room", "participant"] = "room"
    identity: str | None = None
    output: Literal["file", "rtmp", "hls"] = "file"
    format: Literal["mp4", "mkv", "webm"] = "mp4"
    rtmp_url: str | None = None
    hls_window: int = 0
    width: int = 1280
    height: int = 720
    fps: int = 30
    video_kbps: int = 2500
    audio_only: bool = False


class EgressRecord(StoredRecord):
    source: Literal["room", "participant"]
    identity: str | None = None
    output: Literal["file", "rtmp", "hls"]
    format: str | None = None
    rtmp_target: str | None = None  # the RTMP URL without its stream key
    width: int
    height: int
    fps: int
    audio_only: bool = False
    state: EgressState = "starting"
    history: list[EgressTransition] = Field(default_factory=list)
    media_job_id: str | None = None
    file: str | None = None  # relative to the recordings root (file output)
    hls_folder: str | None = None  # relative to the recordings root (HLS output)
    hls_window: int = 0  # HLS: segments in the live playlist (0: every segment)
    tracks: list[str] = Field(default_factory=list)  # producer ids in the mix now
    active_speaker: str | None = None
    requested_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    stopped_at: float | None = None
    duration_s: float | None = None
    size_bytes: int | None = None
    error: str | None = None
    instance: str = ""

    def advance(self, state: EgressState, reason: str = "") -> bool:
        if self.state in ("completed", "failed"):
            return False
        if state != "failed" and ORDER[state] <= ORDER[self.state]:
            return False
        self.state = state
        self.history.append(EgressTransition(state=state, at=time.time(), reason=reason))
        if state == "failed":
            self.error = reason
        log.info("egress=%s room=%s state=%s %s", self.id, self.room, state, reason)
        return True


@dataclass
class Track:
    producer_id: str
    transport_id: str
    consumer_id: str | None = None


@dataclass
class Active:
    record: EgressRecord
    router_id: str
    sfu: SfuClient  # the SFU node hosting the room's router
    tracks: dict[str, Track] = field(default_factory=dict)  # producer id -> plumbing
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    watcher: asyncio.Task[None] | None = None
    empty_timer: asyncio.Task[None] | None = None
    stopping: bool = False
    key_frames: KeyFrameRelay = field(default_factory=KeyFrameRelay)


class EgressService:
    def __init__(
        self, rooms: RoomManager, media: MediaClient, webhooks: Webhooks, recordings_root: Path
    ) -> None:
        self.rooms = rooms
        self.store = rooms.store
        self.records = RecordStore(rooms.store.redis, EgressRecord, "egress", key, INDEX)
        self.media = media
        self.webhooks = webhooks
        self.root = recordings_root
        self.active: dict[str, Active] = {}
        self.empty_grace_s = EMPTY_GRACE_S
        self.tasks = OwnedTasks()

    async def start_service(self) -> None:
        self.rooms.room_listeners.append(self._on_room_event)

    async def close(self) -> None:
        for egress_id in list(self.active):
            with contextlib.suppress(Exception):
                await self.stop(egress_id, "server shutting down")
        await self.tasks.cancel()

    # storage ----------------------------------------------------------------------
    async def save(self, rec: EgressRecord) -> None:
        await self.records.save(rec)

    async def load(self, egress_id: str) -> EgressRecord | None:
        return await self.records.load(egress_id)

    async def get(self, room: str, egress_id: str) -> EgressRecord:
        return await self.records.get(room, egress_id)

    async def list_all(self, room: str | None = None) -> list[EgressRecord]:
        return await self.records.list(room)

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
            instance=self.rooms.instance_id,
        )  # fmt: skip
        rec.history.append(
            EgressTransition(state="starting", at=rec.requested_at, reason="requested")
        )
        body: dict[str, Any] = {
            "kind": "composite", "width": req.width, "height": req.height, "fps": req.fps,
            "videoKbps": req.video_kbps, "audioOnly": req.audio_only,
        }  # fmt: skip
        name = f"egress/{room}/{(req.identity or 'room')}-{rec.id}"
        if req.output == "file":
            body.update(filePath=name, format=req.format)
        elif req.output == "hls":
            body.update(hlsPath=name, hlsWindow=req.hls_window)
        else:
            body["rtmpUrl"] = req.rtmp_url
        active = Active(rec, router_id=room_rec.router_id, sfu=await self.rooms.room_sfu(room))
        # A refusal here (429 over budget or no manager up, 507 no disk, 400) is the
        # caller's answer, and no egress exists.
        job = await self.media.create_job(body)
        self.active[rec.id] = active
        try:
            rec.media_job_id = job["id"]
            if job["state"] == "failed":
                raise InvalidState(f"the media job failed to start: {job.get('error')}")
            if job.get("output_path"):
                relative = str(Path(job["output_path"]).resolve().relative_to(self.root.resolve()))
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
        active.watcher = self.tasks.spawn(self._watch(active))
        self.webhooks.emit("egress.started", rec.model_dump(mode="json"))
        return rec

    async def _wanted(self, rec: EgressRecord) -> list[ProducerRecord]:
        producers = await self.store.list_producers(rec.room)
        return [
            p
            for p in producers
            if (rec.identity is None or p.identity == rec.identity)
            and not (rec.audio_only and p.kind == "video")
        ]

    async def _add_track(self, active: Active, producer: ProducerRecord) -> None:
        rec = active.record
        if producer.producer_id in active.tracks or rec.media_job_id is None:
            return
        names = {p.peer_id: p.name for p in await self.store.list_peers(rec.room)}
        t = await active.sfu.create_plain_transport(
            active.router_id, rtcp_mux=False, app_data={"egress": rec.id}
        )
        track = Track(producer.producer_id, t.transport_id)
        active.tracks[producer.producer_id] = track
        try:
            caps = await active.sfu.get_router_rtp_capabilities(active.router_id)
            source = await self.rooms.usable_producer(
                rec.room, active.sfu, producer, active.router_id
            )
            c = await active.sfu.consume(t.transport_id, source, caps, paused=True)
            track.consumer_id = c.consumer_id
            label = names.get(producer.peer_id) or producer.identity
            if producer.source == "screen":
                label += " (screen)"
            ep = await self.media.add_input(rec.media_job_id, {
                "id": producer.producer_id, "participant": producer.identity,
                "name": label[:64], "stream": consumer_stream(c.rtp_parameters),
            })  # fmt: skip
            await active.sfu.connect_plain_transport(
                t.transport_id, ip=ep["ip"], port=ep["port"], rtcp_port=ep["rtcpPort"]
            )
            await active.sfu.resume_consumer(c.consumer_id)
        except BaseException:
            active.tracks.pop(producer.producer_id, None)
            with contextlib.suppress(SfuError):
                await active.sfu.close_transport(t.transport_id)
            raise
        rec.tracks.append(producer.producer_id)
        await self.save(rec)
        if producer.kind == "video":
            self.tasks.spawn(self._key_frames(active.sfu, c.consumer_id))
        log.info(
            "egress=%s room=%s track added producer=%s identity=%s kind=%s",
            rec.id, rec.room, producer.producer_id, producer.identity, producer.kind,
        )  # fmt: skip

    async def _key_frames(self, sfu: SfuClient, consumer_id: str) -> None:
        # The decoder needs a key frame; the first requests may race the connect.
        for _ in range(4):
            with contextlib.suppress(SfuError):
                await sfu.request_key_frame(consumer_id)
            await asyncio.sleep(0.4)

    async def _remove_track(self, active: Active, producer_id: str) -> None:
        track = active.tracks.pop(producer_id, None)
        if track is None:
            return
        rec = active.record
        if rec.media_job_id is not None:
            with contextlib.suppress(Exception):
                await self.media.remove_input(rec.media_job_id, producer_id)
        with contextlib.suppress(SfuError):
            await active.sfu.close_transport(track.transport_id)
        if producer_id in rec.tracks:
            rec.tracks.remove(producer_id)
        await self.save(rec)
        log.info("egress=%s room=%s track removed producer=%s", rec.id, rec.room, producer_id)

    # following the room --------------------------------------------------------------------
    async def _on_room_event(self, room: str, kind: str, event: dict[str, Any]) -> None:
        for active in list(self.active.values()):
            rec = active.record
            if rec.room != room or active.stopping:
                continue
            if kind == "newProducer":
                if rec.identity is not None and event.get("identity") != rec.identity:
                    continue
                if rec.audio_only and event.get("kind") == "video":
                    continue
                producer = ProducerRecord.model_validate(
                    {
                        "producer_id": event.get("producerId"), "peer_id": event.get("peerId"),
                        "identity": event.get("identity"), "kind": event.get("kind"),
                        "source": event.get("source") or "camera",
                    }
                )  # fmt: skip
                self.tasks.spawn(self._follow_add(active, producer))
            elif kind == "producerClosed" and event.get("producerId") in active.tracks:
                self.tasks.spawn(self._follow_remove(active, str(event["producerId"])))
            elif kind == "peerLeft":
                self.tasks.spawn(self._after_leave(active, str(event.get("peerId"))))
            elif kind == "peerJoined" and active.empty_timer is not None:
                active.empty_timer.cancel()
                active.empty_timer = None
            elif kind == "roomDeleted":
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

    async def _after_leave(self, active: Active, peer_id: str) -> None:
        rec = active.record
        peers = await self.store.list_peers(rec.room)
        if rec.identity is not None:
            if not any(p.identity == rec.identity for p in peers):
                await self._stop_quietly(rec.id, "the participant left")
        elif not peers and active.empty_timer is None:
            active.empty_timer = self.tasks.spawn(self._empty(active))
        del peer_id

    async def _empty(self, active: Active) -> None:
        await asyncio.sleep(self.empty_grace_s)
        if not await self.store.list_peers(active.record.room):
            await self._stop_quietly(active.record.id, "the room stayed empty")

    # the job's life ---------------------------------------------------------------------------
    async def _watch(self, active: Active) -> None:
        rec = active.record
        assert rec.media_job_id is not None
        while not active.stopping:
            try:
                job = await self.media.get(rec.media_job_id)
            except Exception as e:
                log.warning("egress=%s cannot read its job: %s", rec.id, e)
                await asyncio.sleep(2)
                continue
            if active.stopping:
                return
            if job["state"] == "running" and rec.state == "starting":
                rec.started_at = job.get("first_packet_at")
                rec.advance("active", "media flows")
                await self.save(rec)
            await self._relay_key_frames(active, job)
            if job.get("active_speaker") != rec.active_speaker:
                rec.active_speaker = job.get("active_speaker")
                await self.save(rec)
            if job["state"] in ("completed", "failed"):
                why = job.get("error") or job["history"][-1]["reason"]
                ok = job["state"] == "completed"
                await self._end(active, job, ok, f"the job ended: {why}")
                return
            await asyncio.sleep(POLL_S)

    async def _relay_key_frames(self, active: Active, job: dict[str, Any]) -> None:
        consumers = {producer_id: t.consumer_id for producer_id, t in active.tracks.items()}
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
        job: dict[str, Any] = {}
        if rec.media_job_id is not None:
            try:
                job = await self.media.stop(rec.media_job_id)
            except Exception as e:  # it may have ended on its own
                log.warning("egress=%s stop of its job failed: %s", rec.id, e)
                with contextlib.suppress(Exception):
                    job = await self.media.get(rec.media_job_id)
        ok = job.get("state") == "completed"
        why = job.get("error") or (job["history"][-1]["reason"] if job.get("history") else "")
        await self._end(active, job, ok, f"{reason}; job: {why}" if why else reason)
        return rec

    async def _end(self, active: Active, job: dict[str, Any], ok: bool, reason: str) -> None:
        active.stopping = True
        rec = active.record
        stats = job.get("stats") or {}
        rec.duration_s = stats.get("duration_s")
        rec.size_bytes = stats.get("bytes") or None
        await self._finish(active, ok, reason)

    async def _finish(self, active: Active, ok: bool, reason: str) -> None:
        rec = active.record
        if self.active.pop(rec.id, None) is None:
            return  # already finished
        for t in (active.watcher, active.empty_timer):
            if t is not None and t is not asyncio.current_task():
                t.cancel()
        for track in list(active.tracks.values()):
            with contextlib.suppress(SfuError):
                await active.sfu.close_transport(track.transport_id)
        active.tracks.clear()
        rec.tracks.clear()
        rec.stopped_at = time.time()
        rec.advance("completed" if ok else "failed", reason)
        await self.save(rec)
        self.webhooks.emit(
            "egress.finished" if ok else "egress.failed", rec.model_dump(mode="json")
        )

    async def _stop_quietly(self, egress_id: str, reason: str) -> None:
        with contextlib.suppress(Conflict, NotFound):
            await self.stop(egress_id, reason)
