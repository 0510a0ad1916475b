"""One browser's signaling session: a WebSocket, a peer, a request loop.

Every frame passes the same gates in order: size limit, rate limit, JSON
request shape, method, grants, the method's data model. `_dispatch` is the one
place that turns an exception into an error reply; a bad message is answered
and the connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.websockets import (
    WebSocket,
    WebSocketDisconnect,
    WebSocketDisconnected,
    WebSocketState,
)

from mediaplane.control.auth import PermissionDenied, Principal
from mediaplane.control.errors import ControlError, InvalidState
from mediaplane.control.rooms import LocalPeer, RoomManager
from mediaplane.control.signaling import protocol as p
from mediaplane.control.signaling.transport_watch import TransportWatch
from mediaplane.sfu import SfuRpcError
from mediaplane.wire.ids import Json

log = logging.getLogger(__name__)


class RateLimiter:
    """Token bucket: `rate` messages per second with bursts of `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SignalingError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


CLIENT_LEFT_CODES = (1000, 1001)
VALID_SOURCES = {("audio", "audio"), ("video", "video"), ("video", "screen")}
Handler = Callable[["PeerSession", Any], Awaitable[Json]]


class PeerSession:
    def __init__(
        self,
        ws: WebSocket,
        rooms: RoomManager,
        principal: Principal,
        room: str,
        *,
        max_message_bytes: int = 64 * 1024,
        rate: float = 50.0,
        burst: int = 100,
        transport_watch: TransportWatch | None = None,
        ice_servers: Callable[[str], list[p.IceServer]] | None = None,
    ) -> None:
        self.ws = ws
        self.rooms = rooms
        self.sessions = rooms.sessions
        self.resumes = rooms.resumes
        self.principal = principal
        self.room = room
        self.max_message_bytes = max_message_bytes
        self.limiter = RateLimiter(rate, burst)
        self.peer: LocalPeer | None = None
        self.transport_watch = transport_watch
        self.ice_servers = ice_servers or (lambda _identity: [])
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._close_code: int | None = None  # the client's, when it closed the socket

    # transport -------------------------------------------------------------
    async def _send(self, message: BaseModel) -> None:
        if self._closed or self.ws.application_state != WebSocketState.CONNECTED:
            return
        async with self._send_lock:
            try:
                await self.ws.send_text(message.model_dump_json(exclude_unset=True))
            except (WebSocketDisconnect, RuntimeError, OSError):
                self._closed = True

    async def send_event(self, event: str, data: Json) -> None:
        await self._send(p.Event(event=event, data=data))

    async def disconnect(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError, OSError):
            await self.ws.close(code=code, reason=reason)

    async def run(self) -> None:
        """Serve the socket until it closes; then the peer leaves."""
        try:
            while True:
                text = await self.ws.receive_text()
                reply = await self._dispatch(text)
                await self._send(reply)
        except WebSocketDisconnect as e:
            self._close_code = e.code
        except WebSocketDisconnected:  # this side closed it (4011, kicked) meanwhile
            pass
        except RuntimeError as e:  # receive after close, or a binary frame
            if "receive" not in str(e) and "text" not in str(e):
                raise
        finally:
            self._closed = True
            await self._dropped()

    async def _dropped(self) -> None:
        """The socket is gone: a grace period to resume (rooms/resume.py), or a leave."""
        peer = self.peer
        if peer is None or not self._serves(peer):
            return  # never joined, or it resumed on another socket
        # A client that closes normally (1000, 1001: the tab closed) has left; a lost
        # socket (1006, a missed pong, or the client's own 4000 "resuming") may resume.
        if (
            self.resumes.enabled
            and peer.resume_hash is not None
            and self._close_code not in CLIENT_LEFT_CODES
        ):
            await self.resumes.away(peer)
            return
        self._unwatch(peer)
        await self.sessions.leave(peer, "disconnected")

    def _serves(self, peer: LocalPeer) -> bool:
        """This socket is the one the peer's events go to."""
        return peer.send_event == self.send_event

    # the error-to-reply point --------------------------------------------------
    async def _dispatch(self, text: str) -> p.Response:
        req_id: int | None = None
        method = "?"
        try:
            if len(text.encode()) > self.max_message_bytes:
                raise SignalingError(
                    p.BAD_REQUEST, f"message larger than {self.max_message_bytes} bytes"
                )
            # Every frame spends a token, garbage too; the refusal names the id if it has one.
            allowed = self.limiter.allow()
            try:
                request = p.Request.model_validate_json(text)
            except ValidationError as e:
                if not allowed:
                    raise SignalingError(p.RATE_LIMITED, "too many messages; slow down") from None
                raise SignalingError(p.BAD_REQUEST, _first_error(e)) from None
            req_id, method = request.id, request.method
            if not allowed:
                raise SignalingError(p.RATE_LIMITED, "too many messages; slow down")
            entry = HANDLERS.get(request.method)
            if entry is None:
                raise SignalingError(p.UNKNOWN_METHOD, f"unknown method {request.method!r}")
            model, handler = entry
            try:
                data = model.model_validate(request.data)
            except ValidationError as e:
                raise SignalingError(p.INVALID_DATA, _first_error(e)) from None
            result = await handler(self, data)
            return p.Response(id=req_id, ok=True, data=result)
        except SignalingError as e:
            code, message = e.code, e.message
        except PermissionDenied as e:
            code, message = p.FORBIDDEN, str(e)
        except ControlError as e:
            code, message = e.code, e.message
        except SfuRpcError as e:
            code, message = p.SFU_ERROR, e.message
        except Exception:
            log.exception("signaling handler failed room=%s method=%s", self.room, method)
            code, message = p.INTERNAL, "internal error"
        peer_id = self.peer.peer_id if self.peer else "-"
        log.info(
            "signaling refused room=%s peer=%s method=%s code=%s: %s",
            self.room,
            peer_id,
            method,
            code,
            message,
        )
        return p.Response(id=req_id, ok=False, error=p.ErrorBody(code=code, message=message))

    def _unwatch(self, peer: LocalPeer) -> None:
        if self.transport_watch is not None:
            self.transport_watch.forget(peer)

    def joined(self) -> LocalPeer:
        if self.peer is None:
            raise InvalidState("join the room first")
        return self.peer

    # handlers ---------------------------------------------------------------
    async def join(self, data: p.JoinData) -> Json:
        self.principal.require_room(self.room, join=True)
        if self.peer is not None and self.sessions.is_joined(self.peer):
            raise InvalidState("already joined")
        if self.peer is not None:
            self._unwatch(self.peer)
        self.peer = LocalPeer(
            peer_id=uuid.uuid4().hex[:16],
            room=self.room,
            principal=self.principal,
            display_name=data.display_name or self.principal.name or self.principal.identity,
            instance=self.rooms.instance_id,
            send_event=self.send_event,
            disconnect=self.disconnect,
            rtp_capabilities=data.rtp_capabilities,
        )
        reply = await self.sessions.join(self.peer)
        if self.resumes.enabled:
            reply["resumeToken"] = await self.resumes.issue(self.peer)
            reply["resumeGraceS"] = self.resumes.grace_s
        return {**reply, "iceServers": self._ice_servers()}

    def _ice_servers(self) -> list[Json]:
        # Fresh TURN credentials with every join and resume (an ICE restart after a long
        # call may need a new allocation, for which the join's credentials have expired).
        return [s.model_dump() for s in self.ice_servers(self.principal.identity)]

    async def resume(self, data: p.ResumeData) -> Json:
        """Take over this participant's dropped session (docs/signaling.md#resuming-a-session)."""
        self.principal.require_room(self.room, join=True)
        if self.peer is not None:
            raise InvalidState("resume is the first request of a new connection")
        if not self.resumes.enabled:
            raise SignalingError(p.SESSION_EXPIRED, "sessions are not resumable here: join")
        peer, reply = await self.resumes.resume(
            data.resume_token, self.principal, self.room, self.send_event, self.disconnect,
            restart_ice=data.restart_ice,
        )  # fmt: skip
        self.peer = peer
        if self.transport_watch is not None:
            for transport_id in peer.transports:
                self.transport_watch.watch(transport_id, peer)
        return {**reply, "iceServers": self._ice_servers()}

    async def create_transport(self, data: p.CreateTransportData) -> Json:
        peer = self.joined()
        g = peer.principal.grants
        if data.direction == "send" and not g.can_publish:
            raise PermissionDenied("token does not grant can_publish")
        if data.direction == "recv" and not g.can_subscribe:
            raise PermissionDenied("token does not grant can_subscribe")
        transport = await self.sessions.create_transport(peer, data.direction)
        if self.transport_watch is not None:
            self.transport_watch.watch(str(transport["transportId"]), peer)
        return transport

    async def connect_transport(self, data: p.ConnectTransportData) -> Json:
        await self.sessions.connect_transport(
            self.joined(), data.transport_id, data.dtls_parameters
        )
        return {}

    async def restart_ice(self, data: p.TransportIdData) -> Json:
        ice = await self.sessions.restart_ice(self.joined(), data.transport_id)
        return {"iceParameters": ice}

    async def produce(self, data: p.ProduceData) -> Json:
        peer = self.joined()
        source = data.source or data.kind
        if (data.kind, source) not in VALID_SOURCES:
            raise SignalingError(
                p.INVALID_DATA, f"source {source!r} does not match kind {data.kind!r}"
            )
        if not peer.principal.grants.may_publish(source):
            raise PermissionDenied(f"token does not grant publishing {source}")
        producer_id = await self.sessions.produce(
            peer, data.transport_id, data.kind, data.rtp_parameters, source, data.paused,
            video_height=data.video_height,
        )  # fmt: skip
        return {"producerId": producer_id}

    async def consume(self, data: p.ConsumeData) -> Json:
        peer = self.joined()
        if not peer.principal.grants.can_subscribe:
            raise PermissionDenied("token does not grant can_subscribe")
        return await self.sessions.consume(
            peer, data.transport_id, data.producer_id, data.rtp_capabilities
        )

    async def resume_consumer(self, data: p.ConsumerIdData) -> Json:
        await self.sessions.resume_consumer(self.joined(), data.consumer_id)
        return {}

    async def pause_consumer(self, data: p.ConsumerIdData) -> Json:
        await self.sessions.pause_consumer(self.joined(), data.consumer_id)
        return {}

    async def set_preferred_layers(self, data: p.PreferredLayersData) -> Json:
        await self.sessions.set_preferred_layers(
            self.joined(), data.consumer_id, data.spatial_layer, data.temporal_layer
        )
        return {}

    async def track_settings(self, data: p.TrackSettingsData) -> Json:
        return await self.sessions.set_track_settings(
            self.joined(), data.consumer_id, data.visible, data.height
        )

    async def request_key_frame(self, data: p.ConsumerIdData) -> Json:
        await self.sessions.request_key_frame(self.joined(), data.consumer_id)
        return {}

    async def pause_producer(self, data: p.ProducerIdData) -> Json:
        await self.sessions.set_producer_paused(self.joined(), data.producer_id, True)
        return {}

    async def resume_producer(self, data: p.ProducerIdData) -> Json:
        await self.sessions.set_producer_paused(self.joined(), data.producer_id, False)
        return {}

    async def close_producer(self, data: p.ProducerIdData) -> Json:
        await self.sessions.close_producer(self.joined(), data.producer_id)
        return {}

    async def get_stats(self, data: p.EmptyData) -> Json:
        return await self.sessions.stats(self.joined())

    async def ping(self, data: p.EmptyData) -> Json:
        """The client's own liveness check of its socket (the call page's heartbeat)."""
        return {}

    async def leave(self, data: p.EmptyData) -> Json:
        if self.peer is not None:
            self._unwatch(self.peer)
            await self.sessions.leave(self.peer, "left")
            self.peer = None
        return {}


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "message"
    return f"{where}: {err['msg']}"


HANDLERS: dict[str, tuple[type[BaseModel], Handler]] = {
    "join": (p.JoinData, PeerSession.join),
    "resume": (p.ResumeData, PeerSession.resume),
    "createTransport": (p.CreateTransportData, PeerSession.create_transport),
    "connectTransport": (p.ConnectTransportData, PeerSession.connect_transport),
    "restartIce": (p.TransportIdData, PeerSession.restart_ice),
    "produce": (p.ProduceData, PeerSession.produce),
    "consume": (p.ConsumeData, PeerSession.consume),
    "resumeConsumer": (p.ConsumerIdData, PeerSession.resume_consumer),
    "pauseConsumer": (p.ConsumerIdData, PeerSession.pause_consumer),
    "setPreferredLayers": (p.PreferredLayersData, PeerSession.set_preferred_layers),
    "trackSettings": (p.TrackSettingsData, PeerSession.track_settings),
    "requestKeyFrame": (p.ConsumerIdData, PeerSession.request_key_frame),
    "pauseProducer": (p.ProducerIdData, PeerSession.pause_producer),
    "resumeProducer": (p.ProducerIdData, PeerSession.resume_producer),
    "closeProducer": (p.ProducerIdData, PeerSession.close_producer),
    "getStats": (p.EmptyData, PeerSession.get_stats),
    "leave": (p.EmptyData, PeerSession.leave),
    "ping": (p.EmptyData, PeerSession.ping),
}
