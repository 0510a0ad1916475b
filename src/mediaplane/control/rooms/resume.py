"""Resuming a signaling session: a dropped socket is not a leave for a grace period.

A signaling peer gets a resume token with its join (and a new one with every
resume). The token is random, stored only as its SHA-256 in Redis
(`keys.resume_token`) bound to room + identity + peer id, and usable once, by
any instance. When the peer's socket drops (`away`), the peer stays in the
room with its transports, producers and consumers; the others get
`peerReconnecting`; the token's key gets the grace TTL. A `resume` within the
grace period (`resume`) gives the same peer to the new socket: on the same
instance it is rebound, on another one it is adopted from Redis (its record,
its producers and `keys.room_peer_media`: transports, consumers, RTP
capabilities) and the instance that held it forgets it (`Handover`); the SFU
transports get an ICE restart, the client a snapshot of the room, the others
`peerReconnected`. When the grace period runs out first, the peer leaves as
before (`peerLeft`, reason `disconnected`) and its token says `expired`.

Refusals (ResumeRefused codes, docs/signaling.md#resuming-a-session):
`session_expired` (grace over, or no such token), `resume_token_used`,
`session_ended` (the peer left meanwhile: removed, replaced, room deleted),
`resume_mismatch` (the token is another identity's or another room's).

A control-plane instance that dies (no graceful stop: SIGKILL, a lost machine)
cannot run its peers' grace periods. Every instance sweeps Redis (`sweep`, every
`SWEEP_EVERY_S`) for peers whose instance's heartbeat is gone: such a peer is away
since its `disconnected_at`, or since the sweep first saw it orphaned; once the
grace period has passed and its token is still unused, the sweeping instance claims
it (WATCH/MULTI on its record: one instance wins), rebuilds it from Redis and makes
it leave as any expired peer (its SFU transports closed, `peerLeft` reason
`disconnected`, its token `expired`): no ghost participants.

Tasks: one grace task per away peer, on the RoomManager's tasks; cancelled when
the peer resumes, leaves, or is handed over; one sweep loop per instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time

from mediaplane.control.auth import Grants, Principal
from mediaplane.control.errors import NotFound, ResumeRefused
from mediaplane.control.rooms.events import RoomEvents
from mediaplane.control.rooms.guard import REDIS_ERRORS, redis_call, sfu_call
from mediaplane.control.rooms.peers import CLOSE_RESUMED, Disconnect, EventSink, LocalPeer
from mediaplane.control.rooms.placement import Placement
from mediaplane.control.rooms.sessions import Sessions, new_producer_event
from mediaplane.control.tasks import OwnedTasks
from mediaplane.sfu import SfuRpcError
from mediaplane.state.models import PeerRecord, ResumeRecord, RoomRecord
from mediaplane.state.store import StateStore
from mediaplane.wire.ids import Json
from mediaplane.wire.room_events import Handover, PeerReconnected, PeerReconnecting, RoomEvent

log = logging.getLogger(__name__)

SESSION_EXPIRED = "session_expired"
RESUME_TOKEN_USED = "resume_token_used"
SESSION_ENDED = "session_ended"
RESUME_MISMATCH = "resume_mismatch"

# A live token's key while its socket is up (the grace TTL replaces it at a drop):
# only so that a token of an instance that died with it does not stay forever.
LIVE_TOKEN_TTL_S = 24 * 3600.0
SWEEP_EVERY_S = 2.0  # how often an instance looks for the peers of dead instances


def new_token() -> tuple[str, str]:
    """(a resume token, its hash): 256 random bits, URL-safe."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def refusal(record: ResumeRecord | None, room: str, identity: str) -> ResumeRefused | None:
    """Why a resume with this token record is refused (None: it may go on).
    `record` is the record as it was before `take_resume` marked it used."""
    if record is None or record.state == "expired":
        return ResumeRefused(
            SESSION_EXPIRED, "the session expired (or the token is unknown): join again"
        )
    if (record.room, record.identity) != (room, identity):
        return ResumeRefused(RESUME_MISMATCH, "the resume token is not this participant's")
    if record.state == "used":
        return ResumeRefused(RESUME_TOKEN_USED, "the resume token was already used")
    if record.state == "ended":
        return ResumeRefused(SESSION_ENDED, f"the session ended: {record.reason}: join again")
    return None


async def _nowhere(_event: str, _data: Json) -> None:
    return None


async def _closed(_code: int, _reason: str) -> None:
    return None


class Resumes:
    def __init__(
        self,
        store: StateStore,
        placement: Placement,
        sessions: Sessions,
        events: RoomEvents,
        tasks: OwnedTasks,
        instance_id: str,
        *,
        grace_s: float,
        tombstone_s: float,
    ) -> None:
        self.store = store
        self.placement = placement
        self.sessions = sessions
        self.events = events
        self.tasks = tasks
        self.instance_id = instance_id
        self.grace_s = grace_s
        self.tombstone_s = tombstone_s
        self._grace: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Peers of dead instances (sweep): since when this instance saw each orphaned.
        self._orphans: dict[tuple[str, str], float] = {}
        sessions.on_gone.append(self._gone)
        events.room_listeners.append(self._on_room_event)

    @property
    def enabled(self) -> bool:
        return self.grace_s > 0

    # issuing ----------------------------------------------------------------------
    async def issue(self, peer: LocalPeer) -> str:
        """A new resume token for `peer` (the previous one, if any, is no longer its)."""
        token, hashed = new_token()
        record = ResumeRecord(room=peer.room, identity=peer.identity, peer_id=peer.peer_id)
        await redis_call(self.store.put_resume(hashed, record, LIVE_TOKEN_TTL_S))
        peer.resume_hash = hashed
        # The sweep of another instance needs it if this one dies.
        await redis_call(self.store.put_peer_media(peer.room, peer.peer_id, "resume", hashed))
        if peer.rtp_capabilities is not None:
            await redis_call(
                self.store.put_peer_media(
                    peer.room, peer.peer_id, "caps", json.dumps(peer.rtp_capabilities)
                )
            )
        return token

    # the socket dropped -------------------------------------------------------------
    async def away(self, peer: LocalPeer) -> None:
        """`peer`'s socket is gone: it stays for the grace period (then leaves)."""
        if self.sessions.local_peer(peer.room, peer.peer_id) is not peer:
            return
        peer.away_since = time.time()
        owned = True
        try:
            owned = await self.store.update_peer_if_owned(
                peer.room, peer.peer_id, self.instance_id,
                {"state": "disconnected", "disconnected_at": peer.away_since},
            )  # fmt: skip
            if owned and peer.resume_hash is not None:
                await self.store.expire_resume(peer.resume_hash, self.grace_s)
        except REDIS_ERRORS as e:
            log.warning("room=%s peer=%s away, redis unreachable: %s", peer.room, peer.peer_id, e)
        if not owned:  # it resumed through another instance already
            await self.forget_here(peer)
            return
        log.info(
            "peer away room=%s peer=%s: grace %.0f s to resume", peer.room, peer.peer_id,
            self.grace_s,
        )  # fmt: skip
        with contextlib.suppress(*REDIS_ERRORS):
            await self.events.publish(
                PeerReconnecting(room=peer.room, origin=peer.peer_id, peer_id=peer.peer_id)
            )
        key = (peer.room, peer.peer_id)
        self._cancel(key)
        self._grace[key] = self.tasks.spawn(self._expire(peer), f"resume-grace {peer.peer_id}")

    async def _expire(self, peer: LocalPeer) -> None:
        await asyncio.sleep(self.grace_s)
        self._grace.pop((peer.room, peer.peer_id), None)
        if self.sessions.local_peer(peer.room, peer.peer_id) is not peer:
            return
        if peer.away_since is None:
            return
        try:
            record = await self.store.get_peer(peer.room, peer.peer_id)
        except REDIS_ERRORS:
            record = None
        if record is not None and record.instance != self.instance_id:
            await self.forget_here(peer)  # resumed elsewhere and the handover was missed
            return
        log.info(
            "peer did not resume room=%s peer=%s within %.0f s", peer.room, peer.peer_id,
            self.grace_s,
        )  # fmt: skip
        await self.sessions.leave(peer, "disconnected")

    # coming back ------------------------------------------------------------------------
    async def resume(
        self,
        token: str,
        principal: Principal,
        room: str,
        send_event: EventSink,
        disconnect: Disconnect,
        *,
        restart_ice: bool,
    ) -> tuple[LocalPeer, Json]:
        """The peer the token names, now served by this socket; and the resume reply."""
        hashed = token_hash(token)
        record = await redis_call(
            self.store.take_resume(hashed, room, principal.identity, self.tombstone_s)
        )
        if (refused := refusal(record, room, principal.identity)) is not None:
            raise refused
        assert record is not None
        try:
            peer = await self._take(record, principal, send_event, disconnect)
        except Exception:
            # Not served: the token stays usable for the rest of a grace period.
            with contextlib.suppress(*REDIS_ERRORS):
                await self.store.put_resume(hashed, record, self.grace_s)
            raise
        reply = await self._resumed(peer, restart_ice)
        log.info(
            "peer resumed room=%s peer=%s transports=%d producers=%d consumers=%d",
            room, peer.peer_id, len(peer.transports), len(peer.producers), len(peer.consumers),
        )  # fmt: skip
        return peer, reply

    async def _take(
        self, record: ResumeRecord, principal: Principal, send_event: EventSink,
        disconnect: Disconnect,
    ) -> LocalPeer:  # fmt: skip
        peer = self.sessions.local_peer(record.room, record.peer_id)
        if peer is not None:  # it was served here: rebind it to the new socket
            self._cancel((peer.room, peer.peer_id))
            old = peer.disconnect
            peer.send_event, peer.disconnect, peer.principal = send_event, disconnect, principal
            await old(CLOSE_RESUMED, "the session resumed on another connection")
            return peer
        return await self._adopt(record, principal, send_event, disconnect)

    async def _adopt(
        self, record: ResumeRecord, principal: Principal, send_event: EventSink,
        disconnect: Disconnect,
    ) -> LocalPeer:  # fmt: skip
        """Take over a peer another instance served (alive or not) from its Redis records."""
        name, peer_id = record.room, record.peer_id
        async with self.placement.lock(name):
            try:
                room = await self.placement.get_room(name)
            except NotFound:
                raise ResumeRefused(SESSION_ENDED, "the room was deleted: join again") from None
            held = await redis_call(self.store.get_peer(name, peer_id))
            if held is None:
                raise ResumeRefused(
                    SESSION_ENDED, "the participant is no longer in the room: join again"
                )
            peer = await self._rebuild(room, held, principal, send_event, disconnect)
        log.info("peer adopted room=%s peer=%s from instance=%s", name, peer_id, held.instance)
        await self.events.publish(Handover(room=name, origin=peer_id, peer_id=peer_id))
        return peer

    async def _rebuild(
        self, room: RoomRecord, held: PeerRecord, principal: Principal, send_event: EventSink,
        disconnect: Disconnect,
    ) -> LocalPeer:  # fmt: skip
        """A peer served here from its Redis records (under the room's placement lock)."""
        name, peer_id = room.name, held.peer_id
        media = await redis_call(self.store.get_peer_media(name, peer_id))
        caps = media.get("caps")
        peer = LocalPeer(
            peer_id=peer_id, room=name, principal=principal, display_name=held.name,
            instance=self.instance_id, send_event=send_event, disconnect=disconnect,
            joined_at=held.joined_at, kind=held.kind, router_id=held.router_id,
            rtp_capabilities=json.loads(caps) if caps else None,
            resume_hash=media.get("resume"),
        )  # fmt: skip
        listed = await redis_call(self.store.list_producers(name))
        producers = {p.producer_id: p for p in listed}
        for field, value in media.items():
            kind, _, object_id = field.partition(":")
            if kind == "transport":
                peer.transports[object_id] = value
            elif kind == "consumer":
                peer.consumers[object_id] = value
                self.sessions.consumer_owner[object_id] = peer
                source = producers.get(value)
                if source is not None and source.kind == "video":  # layers.py picks its layer
                    peer.video_consumers[object_id] = source.layer_heights
        for producer in producers.values():
            if producer.peer_id == peer_id:
                peer.producers[producer.producer_id] = producer
        async with self.placement.joining(room) as local:
            local.peers[peer_id] = peer
        self.placement.cancel_release(name)
        return peer

    # the peers of dead instances ----------------------------------------------------------
    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            try:
                await self.sweep()
            except REDIS_ERRORS as e:
                log.warning("orphan sweep: redis unreachable: %s", e)
            except Exception:
                log.exception("orphan sweep failed")

    async def sweep(self, now: float | None = None) -> int:
        """Make the peers of dead instances whose grace period is over leave; how many."""
        now = time.time() if now is None else now
        alive: dict[str, bool] = {self.instance_id: True}
        seen: set[tuple[str, str]] = set()
        reaped = 0
        for room in await self.store.list_rooms():
            for held in await self.store.list_peers(room.name):
                if held.instance not in alive:
                    alive[held.instance] = await self.store.instance_alive(held.instance)
                if alive[held.instance]:
                    continue
                key = (room.name, held.peer_id)
                seen.add(key)
                since = held.disconnected_at or self._orphans.setdefault(key, now)
                if now - since >= self.grace_s and await self._reap(room, held, since):
                    reaped += 1
        for key in set(self._orphans) - seen:
            del self._orphans[key]
        return reaped

    async def _reap(self, room: RoomRecord, held: PeerRecord, since: float) -> bool:
        """Claim a dead instance's peer and make it leave (False: another instance did,
        or it resumed meanwhile)."""
        name, peer_id = room.name, held.peer_id
        media = await self.store.get_peer_media(name, peer_id)
        hashed = media.get("resume")
        if hashed is not None:
            taken = await self.store.take_resume(hashed, name, held.identity, self.tombstone_s)
            if taken is not None and taken.state != "live":
                return False  # it resumed (used), or another sweep expired it
        async with self.placement.lock(name):
            claimed = await self.store.update_peer_if_owned(
                name, peer_id, held.instance, {"instance": self.instance_id}
            )
            if not claimed:
                return False
            principal = Principal(
                identity=held.identity, name=held.name, api_key="", grants=Grants(room=name)
            )
            peer = await self._rebuild(room, held, principal, _nowhere, _closed)
        peer.away_since = since
        log.info(
            "peer of dead instance=%s did not resume room=%s peer=%s within %.0f s",
            held.instance, name, peer_id, self.grace_s,
        )  # fmt: skip
        self._orphans.pop((name, peer_id), None)
        await self.sessions.leave(peer, "disconnected")
        return True

    async def _resumed(self, peer: LocalPeer, restart_ice: bool) -> Json:
        """Back: its record, new ICE parameters, a new token, the others told; the reply."""
        peer.away_since = None
        peer.instance = self.instance_id
        await redis_call(self.store.put_peer(peer.room, peer.record()))
        local = self.sessions.room_of(peer)
        transports = []
        for transport_id, direction in list(peer.transports.items()):
            entry: Json = {"transportId": transport_id, "direction": direction}
            if restart_ice:
                try:
                    entry["iceParameters"] = await sfu_call(local.sfu.restart_ice(transport_id))
                except SfuRpcError as e:  # gone in the SFU: the client makes a new one
                    log.warning(
                        "transport gone at resume room=%s peer=%s transport=%s: %s",
                        peer.room, peer.peer_id, transport_id, e.message,
                    )  # fmt: skip
                    await self.sessions.forget_transport(peer, transport_id)
                    continue
            transports.append(entry)
        token = await self.issue(peer)
        await self.events.publish(
            PeerReconnected(room=peer.room, origin=peer.peer_id, peer_id=peer.peer_id)
        )
        others = [
            p for p in await redis_call(self.store.list_peers(peer.room))
            if p.peer_id != peer.peer_id
        ]  # fmt: skip
        producers = await redis_call(self.store.list_producers(peer.room))
        return {
            "peerId": peer.peer_id,
            "roomId": peer.room,
            "routerRtpCapabilities": local.rtp_capabilities,
            "resumeToken": token,
            "resumeGraceS": self.grace_s,
            "peers": [
                {
                    "peerId": p.peer_id,
                    "identity": p.identity,
                    "displayName": p.name,
                    "kind": p.kind,
                    "reconnecting": p.state == "disconnected",
                }
                for p in others
            ],
            "producers": [
                new_producer_event(peer.room, p, origin=None).data()
                for p in producers
                if p.peer_id != peer.peer_id
            ],
            "transports": transports,
            "consumers": [{"consumerId": c, "producerId": p} for c, p in peer.consumers.items()],
            "ownProducers": [
                {
                    "producerId": r.producer_id,
                    "kind": r.kind,
                    "source": r.source,
                    "paused": r.paused,
                }
                for r in peer.producers.values()
            ],
        }

    # another instance took it, or it left -------------------------------------------------
    async def forget_here(self, peer: LocalPeer) -> None:
        """Drop `peer` from this instance without a leave (its SFU objects go on, served
        by another instance); its old socket, if still open, is closed with 4011."""
        self._cancel((peer.room, peer.peer_id))
        old = peer.disconnect
        peer.send_event, peer.disconnect, peer.resume_hash = _nowhere, _closed, None
        self.sessions.forget_here(peer)
        log.info("peer handed over room=%s peer=%s", peer.room, peer.peer_id)
        await old(CLOSE_RESUMED, "the session resumed on another connection")

    async def _on_room_event(self, event: RoomEvent) -> None:
        if isinstance(event, Handover) and event.instance != self.instance_id:
            peer = self.sessions.local_peer(event.room, event.peer_id)
            if peer is not None:
                await self.forget_here(peer)

    async def _gone(self, peer: LocalPeer, left_reason: str | None) -> None:
        """Sessions.teardown: the peer left (`left_reason`) or lost its router (None)."""
        self._cancel((peer.room, peer.peer_id))
        hashed, peer.resume_hash = peer.resume_hash, None
        if hashed is None:
            return
        with contextlib.suppress(*REDIS_ERRORS):
            await self.store.remove_peer_media(peer.room, peer.peer_id)
            if left_reason is not None:
                # A peer away that leaves "disconnected" is one whose grace ran out.
                expired = peer.away_since is not None and left_reason == "disconnected"
                await self.store.put_resume(
                    hashed,
                    ResumeRecord(
                        room=peer.room, identity=peer.identity, peer_id=peer.peer_id,
                        state="expired" if expired else "ended", reason=left_reason,
                    ),
                    self.tombstone_s,
                )  # fmt: skip

    def _cancel(self, key: tuple[str, str]) -> None:
        task = self._grace.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def away_count(self) -> int:
        return len(self._grace)
