"""WHIP ingest and WHEP playback sessions (RFC 9725 and the WHEP draft) over the SFU.

A WHIP session is a room participant whose tracks come from one SDP offer: it
joins through the room sessions (control/rooms/sessions.py), gets a send
transport, connects DTLS with the client's fingerprint and produces every
sendonly m-section. A WHEP session joins the same way with a receive
transport (on a router of its own) and consumes a participant's tracks, one
per recvonly m-section.

Task ownership: the service owns one watchdog task per session (reaps the
session when DTLS is not connected within `connect_timeout_s`, or when ICE
stays disconnected that long) and the end-of-session tasks started by room
events; close() ends every session and cancels what is left. Ending a
session is Sessions.leave: transports closed, producers removed from
Redis, producerClosed + peerLeft announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from typing import Any

from mediaplane.control.auth import PermissionDenied, Principal
from mediaplane.control.errors import Conflict, ControlError, NotFound
from mediaplane.control.rooms import LocalPeer, RoomManager
from mediaplane.control.rooms.guard import redis_call, sfu_call
from mediaplane.control.tasks import OwnedTasks
from mediaplane.control.whip import sdp
from mediaplane.control.whip.session import Kind, MediaSession, SessionPeerEvents, new_etag
from mediaplane.control.whip.slots import SessionSlot, WhipSlots
from mediaplane.sfu import SfuError, SfuRpcError
from mediaplane.sfu.models import Notification, RouterInfo
from mediaplane.state.models import ProducerRecord
from mediaplane.wire.ids import Json

log = logging.getLogger(__name__)


ENDED_KEPT_S = 60.0


class PreconditionFailed(ControlError):
    status = 412
    code = "precondition_failed"


class WhipService:
    def __init__(
        self, rooms: RoomManager, *, connect_timeout_s: float = 15.0,
        slots: WhipSlots,
    ) -> None:  # fmt: skip
        self.rooms = rooms
        self.slots = slots  # sessions per client address, per room and in all
        self.room_sessions = rooms.sessions
        self.connect_timeout_s = connect_timeout_s
        self.sessions: dict[str, MediaSession] = {}
        self._by_transport: dict[str, MediaSession] = {}
        self._by_router: dict[str, MediaSession] = {}
        self.tasks = OwnedTasks()
        self._watchdogs: dict[str, asyncio.Task[None]] = {}
        # Sessions ended lately (id -> kind, identity, when): a client that closes its
        # peer connection before its DELETE (DTLS close first) still gets 200 for it.
        self._ended: dict[str, tuple[Kind, str, float]] = {}
        self._closed = False

    # lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self.rooms.pool.add_listener(self._on_sfu)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.rooms.pool.remove_listener(self._on_sfu)
        for session in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                await self._end(session, "server shutting down")
        await self.tasks.cancel()

    # WHIP --------------------------------------------------------------------------
    async def publish(
        self, room: str, principal: Principal, offer_sdp: str, *, address: str = "unknown"
    ) -> tuple[MediaSession, str]:
        """Publish the offer's tracks into `room`; returns the session and the SDP answer.
        `address`: the client's, for the per-address cap."""
        principal.require_room(room, join=True)
        if not principal.grants.can_publish:
            raise PermissionDenied("token does not grant can_publish")
        offer = sdp.check_offer(offer_sdp)
        slot = self.slots.take(address, room)
        try:
            return await self._publish(room, principal, offer, slot)
        except BaseException:
            slot.release()
            raise

    async def _publish(
        self, room: str, principal: Principal, offer: sdp.Offer, slot: SessionSlot
    ) -> tuple[MediaSession, str]:
        # Everything that can refuse the offer runs before the join, which would
        # replace a live session of the same identity (a bad retry must not end it).
        def check(caps: Json) -> list[sdp.PublishPlan]:
            plans = sdp.plan_publish(offer, caps)
            for plan in plans:
                if plan.kind is not None and not principal.grants.may_publish(plan.kind):
                    raise PermissionDenied(f"token does not grant publishing {plan.kind}")
            return plans

        plans = await self.room_sessions.before_join(room, check)
        session_id, peer = self._new_peer(room, principal)
        await self.room_sessions.join(peer)
        try:
            transport = await self.room_sessions.create_transport(peer, "send")
            session = self._register(session_id, "whip", peer, offer, transport, slot)
            await self.room_sessions.connect_transport(
                peer, session.transport_id, offer.mediasoup_dtls()
            )
            for plan in plans:
                if plan.kind is None or plan.rtp_parameters is None:
                    continue
                try:
                    await self.room_sessions.produce(
                        peer, session.transport_id, plan.kind, plan.rtp_parameters, plan.kind, False
                    )
                except SfuRpcError as e:
                    raise sdp.BadSdp(
                        f"m-section {plan.media.rtp.muxId} ({plan.kind}): "
                        f"the media server refused it: {e.message}"
                    ) from None
            answer = sdp.publish_answer(offer, plans, transport)
        except BaseException:
            await self._abort(session_id, peer, "the offer was refused")
            raise
        self._watch(session)
        log.info(
            "%s published %d tracks identity=%s",
            session.describe(),
            len(peer.producers),
            peer.identity,
        )
        return session, answer

    # WHEP ----------------------------------------------------------------------------
    async def play(
        self, room: str, identity: str, principal: Principal, offer_sdp: str,
        *, address: str = "unknown",
    ) -> tuple[MediaSession, str]:  # fmt: skip
        """Send `identity`'s tracks in `room` to the offerer; returns the session and answer."""
        principal.require_room(room, join=True)
        if not principal.grants.can_subscribe:
            raise PermissionDenied("token does not grant can_subscribe")
        offer = sdp.check_offer(offer_sdp)
        slot = self.slots.take(address, room)
        try:
            return await self._play(room, identity, principal, offer, slot)
        except BaseException:
            slot.release()
            raise

    async def _play(
        self, room: str, identity: str, principal: Principal, offer: sdp.Offer, slot: SessionSlot
    ) -> tuple[MediaSession, str]:
        watched, producers = await self._played(room, identity, principal)
        # As for WHIP: refuse the offer before the join can replace a session.
        codecs = await self.room_sessions.before_join(
            room, lambda caps: sdp.whep_media_codecs(offer, caps)
        )
        session_id, peer = self._new_peer(room, principal, watched_peer=watched)
        await self.room_sessions.join(peer)
        try:
            session, router = await self._open_player(session_id, peer, offer, codecs, slot)
            plans = await self._consume_tracks(session, router, producers, identity)
            answer = sdp.play_answer(
                offer, plans, session.transport, stream_id=f"{room}-{identity}"
            )
            for consumer_id in list(peer.consumers):
                await self.room_sessions.resume_consumer(peer, consumer_id)
        except BaseException:
            await self._abort(session_id, peer, "the offer was refused")
            raise
        self._watch(session)
        log.info(
            "%s plays %d tracks of identity=%s", session.describe(), len(peer.consumers), identity
        )
        return session, answer

    async def _played(
        self, room: str, identity: str, principal: Principal
    ) -> tuple[str, list[ProducerRecord]]:
        """The played participant's peer id and tracks (404 when it is not in the room)."""
        await self.rooms.get_room(room)
        peers = await redis_call(self.rooms.store.list_peers(room))
        watched = next((p for p in peers if p.identity == identity), None)
        if watched is None:
            raise NotFound(f"participant {identity!r} is not in room {room!r}")
        if identity == principal.identity:
            raise Conflict("a WHEP viewer needs an identity of its own (joining would replace it)")
        producers = [
            p
            for p in await redis_call(self.rooms.store.list_producers(room))
            if p.identity == identity
        ]
        return watched.peer_id, producers

    async def _open_player(
        self, session_id: str, peer: LocalPeer, offer: sdp.Offer, codecs: list[Json],
        slot: SessionSlot,
    ) -> tuple[MediaSession, RouterInfo]:  # fmt: skip
        """The session's own router, which speaks the offer's payload types (the
        participant's producers are piped into it), and its connected recv transport."""
        local = self.room_sessions.room_of(peer)
        router = await sfu_call(
            local.sfu.create_router_with_codecs(local.router_id, f"whep:{session_id}", codecs)
        )
        transport = await self.room_sessions.create_transport(
            peer, "recv", router_id=router.router_id
        )
        session = self._register(session_id, "whep", peer, offer, transport, slot)
        session.router_id = router.router_id
        self._by_router[router.router_id] = session
        await self.room_sessions.connect_transport(
            peer, session.transport_id, offer.mediasoup_dtls()
        )
        return session, router

    async def _consume_tracks(
        self,
        session: MediaSession,
        router: RouterInfo,
        producers: list[ProducerRecord],
        identity: str,
    ) -> list[sdp.PlayPlan]:
        """One paused consumer per recvonly m-section the participant has a track for."""
        peer = session.peer
        plans: list[sdp.PlayPlan] = []
        used: set[str] = set()
        for m in session.offer.media:
            producer = next(
                (p for p in producers if p.kind == m.kind and p.producer_id not in used), None
            )
            if not sdp.receiving(m) or producer is None:
                plans.append(sdp.PlayPlan(m))
                continue
            # mediasoup numbers a transport's consumer mids 0, 1, ...: keep the mid
            # header extension only where that equals the offer's mid.
            keep_mid = m.rtp.muxId == str(len(used))
            rtp_caps = sdp.receive_capabilities(m, router.rtp_capabilities, keep_mid=keep_mid)
            try:
                piped = await session.sfu.pipe_producer(producer.producer_id, router.router_id)
                consumer = await session.sfu.consume(
                    session.transport_id, piped.producer_id, rtp_caps, paused=True,
                    app_data={"peerId": peer.peer_id},
                )  # fmt: skip
            except SfuRpcError as e:
                raise sdp.UnsupportedMedia(
                    f"m-section {m.rtp.muxId} ({m.kind}): {identity!r} sends a codec "
                    f"the offer does not accept: {e.message}"
                ) from None
            used.add(producer.producer_id)
            peer.consumers[consumer.consumer_id] = producer.producer_id
            if consumer.kind == "video":
                session.video_consumers.append(consumer.consumer_id)
            plans.append(sdp.PlayPlan(m, consumer.model_dump(by_alias=True)))
        if not used:
            kinds: list[str] = sorted({p.kind for p in producers}) or ["nothing"]
            raise NotFound(
                f"participant {identity!r} publishes {', '.join(kinds)}: "
                "no track for the offer's recvonly m-sections"
            )
        return plans

    # the session resource ---------------------------------------------------------
    def get(self, kind: Kind, session_id: str, principal: Principal) -> MediaSession:
        session = self.sessions.get(session_id)
        if session is None or session.kind != kind or session.ended:
            raise NotFound(f"no {kind.upper()} session {session_id}")
        if principal.identity != session.peer.identity:
            raise PermissionDenied("the token's identity does not own this session")
        principal.require_room(session.room, join=True)
        return session

    async def patch(
        self, kind: Kind, session_id: str, principal: Principal, fragment: str, if_match: str | None
    ) -> tuple[MediaSession, str | None]:
        """Trickle ICE (-> None: 204) or an ICE restart (-> the server's new sdpfrag: 200)."""
        session = self.get(kind, session_id, principal)
        frag = sdp.parse_fragment(fragment)
        if if_match is not None and if_match.strip() not in ("*", session.etag):
            raise PreconditionFailed(f"If-Match {if_match} does not match the session's ETag")
        # RFC 9725 4.3.2: If-Match "*" asks for an ICE restart; so does a new ufrag from a
        # client that sends no If-Match (some do). A retried restart restarts again, so the
        # client gets credentials it can use even if the first reply was lost.
        ufrag = frag.ufrag
        wants_restart = (if_match or "").strip() == "*" and ufrag is not None
        if ufrag is None or (not wants_restart and ufrag == session.client_ufrag):
            # mediasoup is ICE-lite: it learns the client's addresses from its checks,
            # so trickled candidates need no action.
            log.debug("%s trickled %d candidates", session.describe(), frag.candidates)
            return session, None
        if not frag.pwd:
            raise sdp.BadSdp("an ICE restart needs a=ice-pwd with the new a=ice-ufrag")
        ice = await sfu_call(session.sfu.restart_ice(session.transport_id))
        session.transport["iceParameters"] = ice
        session.client_ufrag = ufrag
        session.etag = new_etag()
        log.info("%s ICE restarted", session.describe())
        return session, sdp.restart_fragment(session.offer, session.transport)

    async def delete(self, kind: Kind, session_id: str, principal: Principal) -> None:
        ended = self._ended.get(session_id)
        if ended is not None and ended[:2] == (kind, principal.identity):
            return
        session = self.get(kind, session_id, principal)
        await self._end(session, "left")

    # internals ------------------------------------------------------------------
    def _new_peer(
        self, room: str, principal: Principal, *, watched_peer: str | None = None
    ) -> tuple[str, LocalPeer]:
        session_id = secrets.token_urlsafe(24)
        hooks = SessionPeerEvents(lambda reason: self._end_later(session_id, reason), watched_peer)
        peer = LocalPeer(
            peer_id=uuid.uuid4().hex[:16],
            room=room,
            principal=principal,
            display_name=principal.name or principal.identity,
            instance=self.rooms.instance_id,
            send_event=hooks.send_event,
            disconnect=hooks.disconnect,
        )
        return session_id, peer

    def _register(
        self, session_id: str, kind: Kind, peer: LocalPeer, offer: sdp.Offer, transport: Json,
        slot: SessionSlot,
    ) -> MediaSession:  # fmt: skip
        sfu = self.room_sessions.sfu_of(peer)
        session = MediaSession(
            session_id, kind, peer, offer, transport, sfu, client_ufrag=offer.ufrag, slot=slot
        )
        self.sessions[session_id] = session
        self._by_transport[session.transport_id] = session
        return session

    async def _abort(self, session_id: str, peer: LocalPeer, reason: str) -> None:
        session = self.sessions.get(session_id)
        if session is not None:
            await self._end(session, reason)
        else:
            with contextlib.suppress(Exception):
                await self.room_sessions.leave(peer, reason)

    def _end_later(self, session_id: str, reason: str) -> None:
        session = self.sessions.get(session_id)
        if session is not None and not session.ended:
            self.tasks.spawn(self._end(session, reason), f"end {session_id}")

    async def _end(self, session: MediaSession, reason: str) -> None:
        if session.ended:
            return
        session.ended = True
        self.sessions.pop(session.session_id, None)
        if session.slot is not None:
            session.slot.release()
        now = time.monotonic()
        for sid, (_, _, at) in list(self._ended.items()):
            if now - at > ENDED_KEPT_S or len(self._ended) > 1000:
                del self._ended[sid]
        self._ended[session.session_id] = (session.kind, session.peer.identity, now)
        self._by_transport.pop(session.transport_id, None)
        watchdog = self._watchdogs.pop(session.session_id, None)
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
        try:
            await self.room_sessions.leave(session.peer, reason)
            if session.router_id is not None:
                self._by_router.pop(session.router_id, None)
                with contextlib.suppress(SfuError):
                    await session.sfu.close_router(session.router_id)
        finally:
            log.info(
                "%s ended after %.1f s: %s",
                session.describe(),
                time.monotonic() - session.created,
                reason,
            )

    def _watch(self, session: MediaSession) -> None:
        async def watchdog() -> None:
            try:
                await asyncio.wait_for(session.connected.wait(), self.connect_timeout_s)
            except TimeoutError:
                log.warning(
                    "%s: DTLS not connected after %.1f s; reaping",
                    session.describe(),
                    self.connect_timeout_s,
                )
                self._watchdogs.pop(session.session_id, None)
                await self._end(session, f"not connected within {self.connect_timeout_s:g} s")

        self._watchdogs[session.session_id] = self.tasks.spawn(
            watchdog(), f"whip-watchdog {session.session_id}"
        )

    def _on_sfu(self, note: Notification) -> Any:
        if note.notification in ("transport.dtlsStateChange", "transport.iceStateChange"):
            return self._transport_state(note)
        if note.notification == "router.closed":
            session = self._by_router.get(str(note.get("routerId")))
            if session is not None:
                self._end_later(session.session_id, "the media server closed the session's router")
        return None

    async def _transport_state(self, note: Notification) -> None:
        session = self._by_transport.get(str(note.get("transportId")))
        if session is None or session.ended:
            return
        dtls, ice = note.get("dtlsState"), note.get("iceState")
        if dtls == "connected":
            session.connected.set()
            log.info(
                "%s DTLS connected after %.2f s",
                session.describe(),
                time.monotonic() - session.created,
            )
            for consumer_id in session.video_consumers:
                with contextlib.suppress(SfuError):
                    await session.sfu.request_key_frame(consumer_id)
        elif dtls in ("failed", "closed"):
            await self._end(session, f"DTLS {dtls}")
        elif ice == "disconnected":
            self.tasks.spawn(self._grace(session), f"ice-grace {session.session_id}")
        elif ice in ("connected", "completed"):
            session.ice_lost_at = None

    async def _grace(self, session: MediaSession) -> None:
        """ICE consent lost: end the session unless it comes back within the timeout."""
        lost_at = time.monotonic()
        session.ice_lost_at = lost_at
        await asyncio.sleep(self.connect_timeout_s)
        if session.ice_lost_at == lost_at and not session.ended:
            await self._end(session, f"ICE disconnected for {self.connect_timeout_s:g} s")
