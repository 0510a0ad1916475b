"""Recordings: the seed's Sequence 2, run by the control plane.

Flow for a participant's tracks: a plain transport per track on the room's
router -> consume (paused) -> the media manager starts a recorder and answers
with its ports -> connect the transport to those ports (RTP + RTCP) -> resume
-> request key frames until the recorder reports data. No sleeps as
synchronisation: the recorder's `ready` precedes the connect, and its first
packet is what marks the recording started.

Ownership: the instance that started a recording owns its SFU objects and a
watcher task; it stops the recording when a recorded producer closes (the SFU
closes the consumer with reason `producerclose`), which covers a participant
leaving and the room closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from mediaplane.control.errors import (
    Conflict,
    ControlError,
    InvalidState,
    NotFound,
    Unavailable,
)
from mediaplane.control.jobs.lifecycle import JobRecord, JobService
from mediaplane.control.jobs.plumbing import Feed, KeyFrameRelay, open_feed, request_key_frames
from mediaplane.control.jobs.records import RecordStore, confined_file
from mediaplane.control.media_client import MediaClient, MediaManagerError
from mediaplane.control.rooms import RoomManager
from mediaplane.control.webhooks import Webhooks
from mediaplane.media.models import Job
from mediaplane.sfu import SfuClient, SfuError
from mediaplane.sfu.models import Notification
from mediaplane.state.models import ProducerRecord
from mediaplane.wire.ids import Json
from mediaplane.wire.room_events import NewProducer, PeerLeft, RecordingChanged, RoomEvent

log = logging.getLogger(__name__)


def key(rec_id: str) -> str:
    """string: RecordingRecord JSON."""
    return f"mp:recording:{rec_id}"


INDEX = "mp:recordings"  # sorted set: recording id by requested_at
# A recorded track that ends is waited for this long: if the participant
# publishes the same kind again (a camera switch, a republish), the new track
# continues the same file.
REPUBLISH_GRACE_S = 10.0
WATCH_POLL_S = 0.5  # how often a recording's job is read (its end, key frame requests)


class RecordingRecord(JobRecord):
    noun: ClassVar[str] = "recording"

    identity: str
    peer_id: str
    kinds: list[Literal["audio", "video"]]
    codecs: dict[str, str] = Field(default_factory=dict)
    file: str | None = None  # relative to the recordings root
    start_latency_s: float | None = None  # request -> first packet written
    time_to_first_frame_s: float | None = None  # request -> first video data
    duration_s: float | None = None
    size_bytes: int | None = None
    mode: Literal["participant", "room"] = "participant"
    layout: Literal["muxed", "per_track"] = "muxed"
    parent_id: str | None = None  # set on the files of a group
    children: list[str] = Field(default_factory=list)  # set on a group (room mode, per-track)

    def log_fields(self) -> str:
        return f"identity={self.identity}"


@dataclass
class Group:
    """A recording made of several files: a whole room, or one file per track."""

    record: RecordingRecord
    audio: bool
    video: bool
    pending: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # identity -> debounce


@dataclass
class Active:
    record: RecordingRecord
    sfu: SfuClient  # the SFU node hosting the room's router
    router_id: str = ""
    feeds: dict[str, Feed] = field(default_factory=dict)  # kind -> its feed (first track)
    consumers: dict[str, str] = field(default_factory=dict)  # consumer id -> kind
    detached: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # kind -> grace timer
    watcher: asyncio.Task[None] | None = None
    stopping: asyncio.Lock = field(default_factory=asyncio.Lock)


class RecordingService(JobService[RecordingRecord]):
    event = "recording"
    poll_s = WATCH_POLL_S

    def __init__(
        self, rooms: RoomManager, media: MediaClient, webhooks: Webhooks, recordings_root: Path
    ) -> None:
        records = RecordStore(rooms.store.redis, RecordingRecord, "recording", key, INDEX)
        super().__init__(rooms, media, webhooks, recordings_root, records)
        self.active: dict[str, Active] = {}
        self.groups: dict[str, Group] = {}
        self.republish_grace_s = REPUBLISH_GRACE_S
        self._by_consumer: dict[str, str] = {}

    def listen(self) -> None:
        self.rooms.pool.add_listener(self._on_sfu)
        self.rooms.pool.on_node_down.append(self._on_node_down)
        self.rooms.room_listeners.append(self._on_room_event)

    def live(self) -> list[str]:
        return [*self.groups, *self.active]  # a group first: it stops its files

    async def close(self) -> None:
        self.rooms.pool.remove_listener(self._on_sfu)
        with contextlib.suppress(ValueError):
            self.rooms.pool.on_node_down.remove(self._on_node_down)
        await super().close()

    # the room is told ---------------------------------------------------------------
    async def on_running(self, rec: RecordingRecord) -> None:
        await self._announce(rec)

    async def on_finished(self, rec: RecordingRecord) -> None:
        await self._announce(rec)

    async def _announce(self, rec: RecordingRecord) -> None:
        """Participants see who is recorded (the call page's recording indicator)."""
        with contextlib.suppress(Exception):
            await self.rooms.publish_event(RecordingChanged(
                room=rec.room, recording_id=rec.id, identity=rec.identity,
                active=rec.state == "running",
            ))  # fmt: skip

    # storage ------------------------------------------------------------------------

    async def list(
        self,
        room: str | None = None,
        identity: str | None = None,
        state: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[RecordingRecord]:
        return [
            rec
            for rec in await self.records.list(room, since, until)
            if (identity is None or rec.identity == identity)
            and (state is None or rec.state == state)
        ]

    def file_path(self, rec: RecordingRecord) -> Path:
        return confined_file(self.root, rec.file, f"recording {rec.id}")

    async def delete(self, room: str, rec_id: str) -> None:
        rec = await self.get(room, rec_id)
        if rec.state not in ("completed", "failed"):
            raise Conflict(f"recording {rec_id} is {rec.state}; stop it first")
        if rec.file:
            with contextlib.suppress(FileNotFoundError, NotFound):
                self.file_path(rec).unlink()
        await self.records.delete(rec_id)
        log.info("recording=%s deleted", rec_id)

    # starting -------------------------------------------------------------------
    async def start(
        self,
        room: str,
        identity: str,
        *,
        audio: bool,
        video: bool,
        parent_id: str | None = None,
    ) -> RecordingRecord:
        if not audio and not video:
            raise InvalidState("record audio, video or both")
        room_rec = await self.rooms.get_room(room)
        wanted = {k for k, on in (("audio", audio), ("video", video)) if on}
        peer_id, chosen = await self._choose(room, identity, wanted)
        if room_rec.router_id is None:
            raise InvalidState(f"room {room!r} has no media router")
        rec = RecordingRecord(
            id=uuid.uuid4().hex[:16], room=room, identity=identity, peer_id=peer_id,
            kinds=list(chosen), instance=self.instance, parent_id=parent_id,
        )  # fmt: skip
        rec.begin()
        active = Active(rec, await self.rooms.room_sfu(room), router_id=room_rec.router_id)
        self.active[rec.id] = active
        try:
            await self._plumb(active, chosen)
        except BaseException as e:
            await self._teardown(active)
            self.active.pop(rec.id, None)
            await self.finish(rec, False, f"start failed: {e}")
            raise
        video_feed = active.feeds.get("video")
        active.watcher = self.tasks.spawn(
            self._watch(active, video_feed.consumer_id if video_feed else None)
        )
        return rec

    async def _choose(
        self, room: str, identity: str, wanted: set[str]
    ) -> tuple[str, dict[str, ProducerRecord]]:
        """The participant's peer id and the track of each wanted kind (not a screen);
        409 when a kind is being recorded already, 404 when missing."""
        for a in self.active.values():
            same = a.record.room == room and a.record.identity == identity
            if same and wanted & set(a.record.kinds):
                raise Conflict(f"{identity!r} in {room!r} is already being recorded")
        peers = [p for p in await self.store.list_peers(room) if p.identity == identity]
        if not peers:
            raise NotFound(f"participant {identity!r} is not in room {room!r}")
        producers = [p for p in await self.store.list_producers(room) if p.identity == identity]
        chosen: dict[str, ProducerRecord] = {}
        for kind in ("audio", "video"):
            if kind in wanted:
                match = next(
                    (p for p in producers if p.kind == kind and p.source != "screen"), None
                )
                if match is None:
                    raise NotFound(f"{identity!r} publishes no {kind} track")
                chosen[kind] = match
        return peers[0].peer_id, chosen

    async def _plumb(self, active: Active, chosen: dict[str, ProducerRecord]) -> None:
        """A feed per kind, the recorder started with their streams, connected, resumed."""
        rec, sfu, router_id = active.record, active.sfu, active.router_id
        caps = await sfu.get_router_rtp_capabilities(router_id)
        for kind, producer in chosen.items():
            source = await self.rooms.usable_producer(rec.room, sfu, producer, router_id)
            feed = await open_feed(sfu, router_id, source, {"recording": rec.id}, caps)
            active.feeds[kind] = feed
            active.consumers[feed.consumer_id] = kind
            self._by_consumer[feed.consumer_id] = rec.id
            rec.codecs[kind] = feed.stream["mimeType"]
        parent_id, identity = rec.parent_id, rec.identity
        name = f"{parent_id}/{identity}-{rec.id}" if parent_id else f"{identity}-{rec.id}"
        body: Json = {"filePath": f"rooms/{rec.room}/{name}"}
        body.update({kind: feed.stream for kind, feed in active.feeds.items()})
        job = await self.media.start_recording(body)
        rec.media_job_id = job.id
        if job.state == "failed" or job.output_path is None:
            raise InvalidState(f"the recorder failed to start: {job.error}")
        rec.file = str(Path(job.output_path).resolve().relative_to(self.root.resolve()))
        for kind, feed in active.feeds.items():
            await feed.connect(job.rtp[kind], resume=False)
        for feed in active.feeds.values():
            await feed.resume()
        await self.save(rec)

    # groups: a whole room, or one file per track -----------------------------
    async def start_group(
        self,
        room: str,
        identity: str | None,
        *,
        audio: bool,
        video: bool,
        mode: Literal["participant", "room"],
        layout: Literal["muxed", "per_track"],
    ) -> RecordingRecord:
        await self.rooms.get_room(room)
        if mode == "participant" and identity is None:
            raise InvalidState("give the identity to record, or mode 'room'")
        if mode == "room" and any(
            g.record.room == room and g.record.mode == "room" for g in self.groups.values()
        ):
            raise Conflict(f"room {room!r} is already being recorded")
        parent = RecordingRecord(
            id=uuid.uuid4().hex[:16], room=room, identity=identity or "*", peer_id="",
            kinds=[k for k, on in (("audio", audio), ("video", video)) if on],
            instance=self.instance, mode=mode, layout=layout,
        )  # fmt: skip
        parent.begin()
        group = Group(parent, audio, video)
        self.groups[parent.id] = group
        producers = await self.store.list_producers(room)
        identities = [identity] if identity else sorted({p.identity for p in producers})
        try:
            for ident in identities:
                await self._start_children(group, ident)
        except BaseException:
            if mode == "participant":
                await self._stop_group(group, "start failed")
                raise
        if mode == "participant" and not parent.children:
            self.groups.pop(parent.id, None)
            raise NotFound(f"{identity!r} publishes nothing to record")
        parent.advance("running", f"{len(parent.children)} file(s)")
        await self.save(parent)
        self.emit(parent, "started")
        return parent

    async def _start_children(self, group: Group, identity: str) -> None:
        parent = group.record
        producers = [
            p for p in await self.store.list_producers(parent.room)
            if p.identity == identity and p.source != "screen"
        ]  # fmt: skip
        have = {p.kind for p in producers}
        covered = {
            k
            for a in self.active.values()
            if a.record.parent_id == parent.id and a.record.identity == identity
            for k in a.record.kinds
        }
        kinds = [
            k for k in ("audio", "video") if getattr(group, k) and k in have and k not in covered
        ]
        if not kinds:
            return
        batches = [kinds] if parent.layout == "muxed" else [[k] for k in kinds]
        for batch in batches:
            child = await self.start(
                parent.room, identity, audio="audio" in batch, video="video" in batch,
                parent_id=parent.id,
            )  # fmt: skip
            parent.children.append(child.id)
        await self.save(parent)

    async def _follow(self, group: Group, identity: str) -> None:
        # Wait for the newcomer's other tracks, so a muxed file gets them all.
        await asyncio.sleep(1.0)
        group.pending.pop(identity, None)
        if group.record.id in self.groups:
            try:
                await self._start_children(group, identity)
            except Exception as e:
                log.warning("recording=%s could not add %s: %s", group.record.id, identity, e)

    async def stop_any(self, rec_id: str, reason: str) -> RecordingRecord:
        group = self.groups.get(rec_id)
        if group is not None:
            return await self._stop_group(group, reason)
        return await self.stop(rec_id, reason)

    async def _stop_group(self, group: Group, reason: str) -> RecordingRecord:
        parent = group.record
        self.groups.pop(parent.id, None)
        for task in group.pending.values():
            task.cancel()
        parent.advance("stopping", reason)
        for child_id in parent.children:
            if child_id in self.active:
                with contextlib.suppress(Conflict, NotFound):
                    await self.stop(child_id, reason)
        parent.stopped_at = time.time()
        states = [c.state for c in [await self.load(i) for i in parent.children] if c]
        if states and all(s == "failed" for s in states):
            await self.finish(parent, False, f"{reason}; every file failed")
        else:
            done = states.count("completed")
            await self.finish(parent, True, f"{reason}; {done} file(s) completed")
        return parent

    async def _watch(self, active: Active, video_consumer: str | None) -> None:
        """The start; then, while it records, the recorder's own end (a pipeline error, a
        killed worker, a full disk) ends the recording, and a loss in its video gets a key
        frame asked of the SFU (the worker cannot send RTCP itself)."""
        rec = active.record
        try:
            await self._watch_start(active, video_consumer)
        except (MediaManagerError, Unavailable) as e:
            log.warning("recording=%s cannot follow its start: %s", rec.id, e)
        if rec.state != "running" or not rec.media_job_id:
            return
        key_frames = KeyFrameRelay()

        async def step(job: Job) -> bool:
            if rec.state != "running":
                return False
            if job.terminal:
                # stop() cancels this watcher: it runs as a task of its own, and adds the
                # recorder's reason ("; recorder: worker killed by signal SIGKILL; ...").
                self.tasks.spawn(
                    self._stop_quietly(rec.id, "the recorder ended by itself"),
                    f"recording {rec.id} ended",
                )
                return False
            video = next((c for c, k in active.consumers.items() if k == "video"), None)
            for _, count in await key_frames.relay(active.sfu, job, {"video": video}):
                log.info(
                    "recording=%s key frame requested: the recorder lost video data (%d)",
                    rec.id, count,
                )  # fmt: skip
            return True

        await asyncio.sleep(self.poll_s)
        await self.watch(rec, step)

    async def _watch_start(self, active: Active, video_consumer: str | None) -> None:
        """Key frames until the recorder has video; the first packet marks the start."""
        rec = active.record
        assert rec.media_job_id is not None
        deadline = time.monotonic() + 15
        next_kf = 0.0
        while time.monotonic() < deadline and rec.state in ("starting", "running"):
            if video_consumer and time.monotonic() >= next_kf:
                with contextlib.suppress(SfuError):
                    await active.sfu.request_key_frame(video_consumer)
                next_kf = time.monotonic() + 0.5
            job = await self.media.get(rec.media_job_id)
            if job.first_packet_at and rec.state == "starting":
                started = float(job.first_packet_at)
                rec.start_latency_s = started - rec.requested_at
                reason = job.history[-1].reason if job.history else ""
                await self.mark_running(rec, reason, started)
            video_at = job.first_packet_by_stream.get("video")
            if rec.state == "running" and (video_consumer is None or video_at):
                if video_at:
                    rec.time_to_first_frame_s = float(video_at) - rec.requested_at
                    await self.save(rec)
                return
            await asyncio.sleep(0.1)
        log.warning(
            "recording=%s: no %s data after 15 s", rec.id, "video" if video_consumer else "audio"
        )

    # stopping -------------------------------------------------------------------
    async def _on_node_down(self, node_id: str) -> None:
        """The SFU node of a recorded room died: finish (EOS) what was recorded so far."""
        for active in list(self.active.values()):
            if active.sfu.closed:  # the pool closed the dead node's client
                log.warning("recording=%s: SFU node %s is down", active.record.id, node_id)
                with contextlib.suppress(Conflict, NotFound):
                    await self.stop(active.record.id, f"SFU node {node_id} is down")

    async def on_media_jobs_failed(self, job_ids: Collection[str], reason: str) -> None:
        """Jobs lost with their media manager: their recordings end as failed, with why."""
        for active in list(self.active.values()):
            if active.record.media_job_id in job_ids:
                log.warning("recording=%s lost its media job: %s", active.record.id, reason)
                with contextlib.suppress(Conflict, NotFound):
                    await self.stop(active.record.id, "its media job was lost")

    async def stop(self, rec_id: str, reason: str) -> RecordingRecord:
        if rec_id in self.groups:
            return await self._stop_group(self.groups[rec_id], reason)
        active = self.active.get(rec_id)
        if active is None:
            if (stored := await self.load(rec_id)) is not None:
                raise Conflict(f"recording {rec_id} is already {stored.state}")
            raise NotFound(f"no recording {rec_id!r}")
        async with active.stopping:
            rec = active.record
            if rec.state in ("stopping", "completed", "failed"):
                raise Conflict(f"recording {rec_id} is already {rec.state}")
            rec.advance("stopping", reason)
            await self.save(rec)
            if active.watcher is not None:
                active.watcher.cancel()
            job = await self.stop_job(rec)
            await self._teardown(active)
            self.active.pop(rec_id, None)
            rec.stopped_at = time.time()
            rec.size_bytes = job.stats.bytes if job else None
            rec.duration_s = job.stats.duration_s if job else None
            if job is not None and job.state == "completed":
                await self.finish(rec, True, f"{reason}; {job.history[-1].reason}")
            else:
                why = (job.error or job.state) if job else None
                await self.finish(rec, False, f"{reason}; recorder: {why}")
            group = self.groups.get(rec.parent_id or "")
            if (
                group is not None
                and group.record.mode == "participant"
                and not any(a.record.parent_id == group.record.id for a in self.active.values())
            ):
                self.tasks.spawn(self._stop_group(group, reason))
            return rec

    async def _teardown(self, active: Active) -> None:
        for timer in active.detached.values():
            if timer is not asyncio.current_task():
                timer.cancel()
        for consumer_id in active.consumers:
            self._by_consumer.pop(consumer_id, None)
        for feed in active.feeds.values():
            await feed.close()

    def _on_sfu(self, note: Notification) -> Any:
        if note.notification == "consumer.closed" and note.get("reason") == "producerclose":
            consumer_id = str(note.get("consumerId"))
            rec_id = self._by_consumer.pop(consumer_id, None)
            active = self.active.get(rec_id) if rec_id else None
            if active is not None:
                kind = active.consumers.pop(consumer_id, "")
                active.detached[kind] = self.tasks.spawn(self._grace(active, kind))
                log.info("recording=%s %s track ended; waiting %.0f s for a republish",
                         active.record.id, kind, self.republish_grace_s)  # fmt: skip
        return None

    async def _grace(self, active: Active, kind: str) -> None:
        await asyncio.sleep(self.republish_grace_s)
        if active.detached.get(kind) is asyncio.current_task():
            await self._stop_quietly(active.record.id, "the recorded track ended")

    async def _on_room_event(self, event: RoomEvent) -> None:
        """Follow the recorded participant (republished tracks, leaving) and, for a
        whole-room recording, newcomers."""
        room = event.room
        if isinstance(event, NewProducer) and event.source != "screen":
            identity = event.identity
            for group in list(self.groups.values()):
                if (
                    group.record.room == room
                    and group.record.mode == "room"
                    and identity not in group.pending
                ):
                    group.pending[identity] = self.tasks.spawn(self._follow(group, identity))
        for active in list(self.active.values()):
            rec = active.record
            if rec.room != room:
                continue
            if isinstance(event, PeerLeft) and event.peer_id == rec.peer_id:
                self.tasks.spawn(self._stop_quietly(rec.id, "the participant left"))
            elif (
                isinstance(event, NewProducer)
                and event.peer_id == rec.peer_id
                and event.source != "screen"
                and event.kind in active.detached
            ):
                await self._reattach(active, event.kind, event.producer_id)

    async def _reattach(self, active: Active, kind: str, producer_id: str) -> None:
        """Consume the republished track on the same plain transport: same file."""
        timer = active.detached.pop(kind, None)
        if timer is not None:
            timer.cancel()
        try:
            caps = await active.sfu.get_router_rtp_capabilities(active.router_id)
            record = await self.store.get_producer(active.record.room, producer_id)
            if record is not None:  # on another router of a spanning room: its pipe
                producer_id = await self.rooms.usable_producer(
                    active.record.room, active.sfu, record, active.router_id
                )
            transport_id = active.feeds[kind].transport_id
            c = await active.sfu.consume(transport_id, producer_id, caps, paused=False)
        except (SfuError, ControlError) as e:
            log.warning(
                "recording=%s could not follow the republished %s: %s", active.record.id, kind, e
            )
            active.detached[kind] = self.tasks.spawn(self._grace(active, kind))
            return
        active.consumers[c.consumer_id] = kind
        self._by_consumer[c.consumer_id] = active.record.id
        if kind == "video":
            await request_key_frames(active.sfu, c.consumer_id, 3, 0.3)
        log.info(
            "recording=%s follows the republished %s track %s", active.record.id, kind, producer_id
        )

    async def _stop_quietly(self, rec_id: str, reason: str) -> None:
        with contextlib.suppress(Conflict, NotFound):
            await self.stop(rec_id, reason)
