"""Room events (wire/room_events.py): published and received in this one place.

Every instance publishes what happens in a room on the room's Redis channel
and listens with one pattern subscription to every room's. A received event
goes, typed, first to the `room_listeners` (recordings, egress: every room of
every instance), then to this instance's own peers in that room (`_react`):
forwarded to them as a signaling event, or acted on (kick, replace, grants).
Pub/sub is at-most-once; Redis hashes are the truth (docs/redis-keys.md).

Task: `listen()` runs for the RoomManager's lifetime; it resubscribes by
itself after a Redis loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from pydantic import ValidationError

from mediaplane.control.auth import Grants
from mediaplane.control.rooms.guard import REDIS_ERRORS, redis_call
from mediaplane.control.rooms.peers import CLOSE_KICKED, CLOSE_ROOM_DELETED, LocalRoom
from mediaplane.sfu import SfuError
from mediaplane.state import keys
from mediaplane.state.store import StateStore
from mediaplane.wire.room_events import (
    ROOM_EVENT,
    GrantsChanged,
    Kick,
    NewProducer,
    ProducerPaused,
    ProducerResumed,
    Replaced,
    RoomDeleted,
    RoomEvent,
)

log = logging.getLogger(__name__)

RoomListener = Callable[[RoomEvent], Awaitable[None]]


class PeersHere(Protocol):
    """What an event from another instance can ask of this instance's peers."""

    async def kick(self, room: str, identity: str | None, code: int, reason: str) -> None: ...

    async def replace(self, room: str, peer_id: str) -> None: ...

    async def apply_grants(self, room: str, identity: str, grants: Grants) -> None: ...


class RoomEvents:
    def __init__(self, store: StateStore, instance_id: str, rooms: dict[str, LocalRoom]) -> None:
        self.store = store
        self.instance_id = instance_id
        self.rooms = rooms
        # Called for every room event of every instance: recordings, egress.
        self.room_listeners: list[RoomListener] = []
        self.here: PeersHere | None = None

    async def publish(self, event: RoomEvent) -> None:
        """Tell every instance (this one too, through Redis)."""
        stamped = event.model_copy(update={"instance": self.instance_id})
        await redis_call(self.store.publish(keys.room_events(event.room), stamped))

    async def listen(self) -> None:
        """One pattern subscription for every room; reconnects by itself."""
        pattern = keys.room_events("*")
        delay = 0.1
        while True:
            pubsub = self.store.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                delay = 0.1
                async for msg in pubsub.listen():
                    if msg.get("type") == "pmessage":
                        await self.deliver(str(msg["data"]))
            except REDIS_ERRORS as e:
                log.warning("room events: redis lost (%s); resubscribing in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    async def deliver(self, raw: str) -> None:
        """One message off the channel: to the listeners, then to the peers here."""
        try:
            event = ROOM_EVENT.validate_json(raw)
        except ValidationError:
            log.error("malformed room event ignored: %.200s", raw)
            return
        for listener in list(self.room_listeners):
            try:
                await listener(event)
            except Exception:
                log.exception("room listener failed on %s in room=%s", event.type, event.room)
        await self._react(event)

    async def _react(self, event: RoomEvent) -> None:
        local = self.rooms.get(event.room)
        if local is None or self.here is None:
            return
        from_here = event.instance == self.instance_id
        match event:
            case Kick() if not from_here:
                await self.here.kick(
                    event.room, event.identity, CLOSE_KICKED, "removed by an admin"
                )
                return
            case RoomDeleted() if not from_here:
                await self.here.kick(event.room, None, CLOSE_ROOM_DELETED, "room deleted")
                return
            case Replaced() if not from_here:
                await self.here.replace(event.room, event.peer_id)
                return
            case GrantsChanged() if not from_here:
                with contextlib.suppress(ValidationError):
                    grants = Grants.model_validate(event.grants)
                    await self.here.apply_grants(event.room, event.identity, grants)
                return
            case ProducerPaused() | ProducerResumed():
                for p in local.peers.values():
                    if (rec := p.producers.get(event.producer_id)) is not None:
                        rec.paused = isinstance(event, ProducerPaused)
            case NewProducer() if (
                local.speaker_observer and event.kind == "audio" and not from_here
            ):
                with contextlib.suppress(SfuError):
                    await local.sfu.observer_add_producer(local.speaker_observer, event.producer_id)
        if not event.forwarded:
            return
        data = event.data()
        for peer in list(local.peers.values()):
            if peer.peer_id != event.origin:
                await peer.send_event(event.type, data)
