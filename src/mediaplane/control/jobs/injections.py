"""Injections: a media file or a URL played into a room as a participant of its own.

One media-manager `inject` job per injection. The control plane makes the
injection a participant (`LocalPeer`, identity `inject-<id>`, kind `ingress`)
that joins through the RoomManager like any peer, so everyone in the room
(browsers, aiortc peers, recorders, egress) sees `peerJoined`, then a
`newProducer` per track, and consumes it with no change on their side:

    plain transport per kind (comedia) on the room's router
      -> media job: uridecodebin -> Opus / VP8 -> RTP -> those transports
      -> the job reports decoded data of a kind -> produce that kind (newProducer)
    job ends (file finished, source gone) / stop / kick / room deleted
      -> the peer leaves (producerClosed per track, peerLeft)

States (lifecycle.py, docs/job-lifecycle.md):

    starting -> running -> stopping -> completed | failed

Ownership: the instance that started an injection owns its LocalPeer (so its
SFU objects) and one watcher task that polls the job. Records live in Redis
(`mp:injection:{id}`, index `mp:injections`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mediaplane.control.auth import Grants, PermissionDenied, Principal
from mediaplane.control.errors import BadRequest, Conflict, ControlError, NotFound
from mediaplane.control.jobs.lifecycle import JobRecord, JobService, Step, job_reason
from mediaplane.control.jobs.plumbing import close_transport
from mediaplane.control.jobs.records import RecordStore
from mediaplane.control.media_client import MediaClient, MediaManagerError
from mediaplane.control.rooms import LocalPeer, RoomManager
from mediaplane.control.urls import redact
from mediaplane.control.webhooks import Webhooks
from mediaplane.media.errors import BadRequest as MediaBadRequest
from mediaplane.media.models import Job, check_source_url
from mediaplane.media.paths import confine
from mediaplane.sfu import SfuClient
from mediaplane.url_guard import OutboundPolicy, OutboundRefused, check_url
from mediaplane.wire.ids import Json

log = logging.getLogger(__name__)

SourceType = Literal["file", "http", "hls", "rtmp", "rtsp"]
ROOM_OUTPUT_TREES = ("rooms", "egress")  # <tree>/<room>/...: what a room's media work writes
Kind = Literal["audio", "video"]
INDEX = "mp:injections"  # sorted set: injection id by requested_at
POLL_S = 0.3
# What the SFU receives: the worker encodes to exactly these.
RTP = {
    "audio": {
        "mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2,
        "parameters": {"sprop-stereo": 1, "useinbandfec": 1},
    },
    "video": {"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000},
}  # fmt: skip


def key(injection_id: str) -> str:
    """string: InjectionRecord JSON."""
    return f"mp:injection:{injection_id}"


class InjectionRequest(BaseModel):
    """What a client asks for (the REST body, validated once here)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1,
        max_length=2048,
        description="a file under the media root (e.g. `media/intro.mp4`), or a URL: "
        "http(s):// file or HLS playlist (.m3u8), rtmp(s)://, rtsp(s)://",
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=64, description="the participant name others see"
    )
    audio: bool = True
    video: bool = True
    loop: bool = Field(default=False, description="start again at the end (files, HTTP files)")

    @model_validator(mode="after")
    def _kinds(self) -> InjectionRequest:
        if not (self.audio or self.video):
            raise ValueError("inject audio, video or both")
        if self.name is not None and any(ord(c) < 32 for c in self.name):
            raise ValueError("name must not contain control characters")
        return self


class InjectionRecord(JobRecord):
    noun: ClassVar[str] = "injection"

    identity: str  # inject-<id>: the participant others see
    name: str
    peer_id: str
    source: str  # a file under the media root, or the URL without credentials and query
    source_type: SourceType
    audio: bool
    video: bool
    loop: bool
    producers: dict[str, str] = Field(default_factory=dict)  # kind -> producer id
    played_s: float | None = None  # running time, across loops
    loops: int = 0


@dataclass
class Active:
    record: InjectionRecord
    peer: LocalPeer
    sfu: SfuClient  # the SFU node hosting the room's router
    transports: dict[str, str] = field(default_factory=dict)  # kind -> plain transport id
    ssrcs: dict[str, int] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    watcher: asyncio.Task[None] | None = None
    ending: bool = False


def classify(source: str) -> SourceType:
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("rtmp", "rtmps"):
        return "rtmp"
    if scheme in ("rtsp", "rtsps"):
        return "rtsp"
    if PurePosixPath(urlsplit(source).path).suffix.lower() == ".m3u8":
        return "hls"
    return "http"


def default_name(source: str, source_type: SourceType) -> str:
    if source_type == "file":
        return PurePosixPath(source).stem[:64] or "media"
    stem = PurePosixPath(urlsplit(source).path).stem
    return f"{source_type}: {stem}"[:64] if stem else source_type


class InjectionService(JobService[InjectionRecord]):
    event = "injection"
    poll_s = POLL_S

    def __init__(
        self,
        rooms: RoomManager,
        media: MediaClient,
        webhooks: Webhooks,
        media_root: Path,
        outbound: OutboundPolicy,
    ) -> None:
        records = RecordStore(rooms.store.redis, InjectionRecord, "injection", key, INDEX)
        super().__init__(rooms, media, webhooks, media_root, records)
        self.active: dict[str, Active] = {}
        self.outbound = outbound

    # Room events reach the injection's peer like any peer's: no `listen`.
    def live(self) -> list[str]:
        return list(self.active)

    # the source -------------------------------------------------------------------------
    async def _source(self, room: str, source: str) -> tuple[SourceType, dict[str, str], str]:
        """(type, the media job's source field, what the record shows); 400 when refused.

        A URL must reach a public address or one the allow-list names (url_guard; the
        media worker checks every connection again when it makes it). A file is any
        file under the media root except another room's outputs
        (recordings and transcodes under rooms/<room>/, egress under egress/<room>/):
        a room's admin may replay the room's own, not another room's (403)."""
        if "://" in source or source.lower().startswith(("file:", "ftp:", "data:")):
            try:
                check_source_url(source)
            except ValueError as e:
                raise BadRequest(f"source: {e}") from None
            try:
                await check_url(source, self.outbound)
            except OutboundRefused as e:
                log.info("room=%s injection source refused: %s", room, redact(source))
                raise BadRequest(f"source: {e}") from None
            return classify(source), {"sourceUrl": source}, redact(source)
        try:
            path = confine(self.root, source, must_exist=True)
        except MediaBadRequest as e:
            raise BadRequest(f"source: {e.message}") from None
        parts = path.relative_to(self.root.resolve()).parts
        if parts[0] in ROOM_OUTPUT_TREES and (len(parts) < 3 or parts[1] != room):
            raise PermissionDenied(f"source: {source!r} is another room's output, not {room!r}'s")
        return "file", {"sourcePath": source}, source

    # starting ---------------------------------------------------------------------------
    async def start(self, room: str, req: InjectionRequest) -> InjectionRecord:
        await self.rooms.get_room(room)  # 404 before anything is made
        source_type, job_source, shown = await self._source(room, req.source)
        injection_id = uuid.uuid4().hex[:16]
        identity = f"inject-{injection_id}"
        name = req.name or default_name(shown, source_type)
        rec = InjectionRecord(
            id=injection_id, room=room, identity=identity, name=name,
            peer_id=uuid.uuid4().hex[:12], source=shown, source_type=source_type,
            audio=req.audio, video=req.video, loop=req.loop, instance=self.instance,
        )  # fmt: skip
        rec.begin()
        principal = Principal(
            identity=identity, name=name, api_key="",
            grants=Grants(room=room, room_join=True, can_subscribe=False,
                          can_publish_sources=["audio", "video"]),
        )  # fmt: skip
        peer = LocalPeer(
            peer_id=rec.peer_id, room=room, principal=principal, display_name=name,
            instance=self.rooms.instance_id, send_event=self._peer_events(injection_id),
            disconnect=self._peer_disconnected(injection_id), kind="ingress",
        )  # fmt: skip
        await self.rooms.join(peer)  # 403 room_full; announces peerJoined
        active = Active(rec, peer, self.rooms.sfu_of(peer))
        self.active[rec.id] = active
        try:
            router_id = self.rooms.room_of(peer).router_id
            body: Json = {"kind": "inject", "loop": req.loop, **job_source}
            kinds: list[Kind] = [k for k in ("audio", "video") if getattr(req, k)]
            for kind in kinds:
                t = await active.sfu.create_plain_transport(
                    router_id, rtcp_mux=True, comedia=True,
                    app_data={"peerId": peer.peer_id, "injection": rec.id},
                )  # fmt: skip
                peer.transports[t.transport_id] = "send"
                active.transports[kind] = t.transport_id
                active.ssrcs[kind] = random.randint(100_000, 2**31 - 1)
                body[kind] = {
                    "ip": t.tuple.local_address, "port": t.tuple.local_port,
                    "payloadType": RTP[kind]["payloadType"], "ssrc": active.ssrcs[kind],
                }  # fmt: skip
            job = await self.media.create_job(body)
            rec.media_job_id = job.id
            if job.state == "failed":
                raise MediaManagerError(f"the media job failed to start: {job.error}")
            await self.save(rec)
        except BaseException as e:
            reason = e.message if isinstance(e, ControlError) else repr(e)
            await self._finish(active, False, f"start failed: {reason}")
            raise
        active.watcher = self.tasks.spawn(self.watch(rec, self._step(active), retry_s=2))
        log.info(
            "injection=%s room=%s started job=%s source=%s (%s) loop=%s",
            rec.id, room, rec.media_job_id, shown, source_type, req.loop,
        )  # fmt: skip
        return rec

    async def _produce(self, active: Active, kind: Kind) -> None:
        rec = active.record
        params = {"codecs": [RTP[kind]], "encodings": [{"ssrc": active.ssrcs[kind]}]}
        producer_id = await self.rooms.produce(
            active.peer, active.transports[kind], kind, params, kind, False
        )
        rec.producers[kind] = producer_id
        log.info("injection=%s room=%s produces %s as %s", rec.id, rec.room, kind, producer_id)

    # the job's life -----------------------------------------------------------------------
    def _step(self, active: Active) -> Step:
        rec = active.record

        async def step(job: Job) -> bool:
            async with active.lock:
                if active.ending:
                    return False
                changed = await self._follow(active, job)
                if job.terminal:
                    ok = job.state == "completed"
                    why = job_reason(job).removesuffix("; no file")  # an inject job writes none
                    reason = "the source ended" if ok else f"the source failed: {why}"
                    await self._end(active, job, ok, reason)
                    return False
                if changed:
                    await self.save(rec)
            return True

        return step

    async def _follow(self, active: Active, job: Job) -> bool:
        """Produce each kind once its data flows; keep the record's numbers. True if changed."""
        rec = active.record
        changed = False
        kinds: tuple[Kind, ...] = ("audio", "video")
        for kind in kinds:
            flows = kind in job.first_packet_by_stream
            if kind in active.transports and kind not in rec.producers and flows:
                await self._produce(active, kind)
                changed = True
        if rec.producers and rec.state == "starting":
            reason = "media flows: " + ", ".join(sorted(rec.producers))
            await self.mark_running(rec, reason, job.first_packet_at)
            changed = True
        if job.stats.loops != rec.loops:
            rec.loops, changed = job.stats.loops, True
        rec.played_s = job.stats.duration_s
        return changed

    async def stop(self, injection_id: str, reason: str) -> InjectionRecord:
        active = self.active.get(injection_id)
        if active is None:
            if (stored := await self.load(injection_id)) is not None:
                raise Conflict(f"injection {injection_id} is already {stored.state}")
            raise NotFound(f"no injection {injection_id!r}")
        if active.ending:
            raise Conflict(f"injection {injection_id} is already stopping")
        active.ending = True
        rec = active.record
        async with active.lock:
            rec.advance("stopping", reason)
            await self.save(rec)
            job = await self.stop_job(rec)
            ok = job is not None and job.state == "completed"
            await self._end(active, job, ok, reason)
        return rec

    async def _end(self, active: Active, job: Job | None, ok: bool, reason: str) -> None:
        active.ending = True
        if job is not None:
            active.record.played_s = job.stats.duration_s
            active.record.loops = job.stats.loops
        await self._finish(active, ok, reason)

    async def _finish(self, active: Active, ok: bool, reason: str) -> None:
        rec = active.record
        if self.active.pop(rec.id, None) is None:
            return  # already finished
        active.ending = True
        if active.watcher is not None and active.watcher is not asyncio.current_task():
            active.watcher.cancel()
        # Leaving closes the plain transports (so the producers): producerClosed, peerLeft.
        with contextlib.suppress(Exception):
            await self.rooms.leave(active.peer, reason[:200])
        for transport_id in active.transports.values():  # if the peer never fully joined
            await close_transport(active.sfu, transport_id)
        await self.finish(rec, ok, reason)

    # the injection's peer: what the room does to it ---------------------------------------
    def _peer_events(self, injection_id: str) -> Any:
        async def on_event(name: str, data: Json) -> None:
            if name == "rejoin":  # the room's router is gone (an SFU worker died)
                self.tasks.spawn(
                    self._end_quietly(injection_id, f"media server lost: {data}", False)
                )

        return on_event

    def _peer_disconnected(self, injection_id: str) -> Any:
        async def on_disconnect(code: int, reason: str) -> None:
            # Removed by an admin (4003), room deleted (4004): the peer has left already.
            self.tasks.spawn(self._end_quietly(injection_id, f"{reason} ({code})", True))

        return on_disconnect

    async def _end_quietly(self, injection_id: str, reason: str, ok: bool) -> None:
        active = self.active.get(injection_id)
        if active is None or active.ending:
            return
        if ok:
            with contextlib.suppress(Conflict, NotFound):
                await self.stop(injection_id, reason)
            return
        active.ending = True
        if active.record.media_job_id is not None:
            with contextlib.suppress(Exception):
                await self.media.stop(active.record.media_job_id)
        await self._finish(active, False, reason)
