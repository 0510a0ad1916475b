"""SFU notifications about this instance's rooms, to the peers they concern.

Consumer events go to the peer that owns the consumer (named by the room's
producer id, not by a pipe of it); the active speaker to the room's peers; a
dead worker makes the rooms it hosted rejoin (resync.py).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from mediaplane.control.rooms.guard import REDIS_ERRORS
from mediaplane.control.rooms.resync import Resync
from mediaplane.control.rooms.sessions import Sessions
from mediaplane.sfu.models import Notification
from mediaplane.state.models import ProducerRecord
from mediaplane.state.store import StateStore

log = logging.getLogger(__name__)

CONSUMER_STATE = {
    "consumer.producerPause": "consumerPaused",
    "consumer.producerResume": "consumerResumed",
}


class SfuNotifications:
    def __init__(self, store: StateStore, sessions: Sessions, resync: Resync) -> None:
        self.store = store
        self.sessions = sessions
        self.resync = resync

    def listener(self, note: Notification) -> Any:
        """The SfuPool listener (returns the coroutine the client runs as a task)."""
        return self.handle(note)

    async def handle(self, note: Notification) -> None:
        kind = note.notification
        owners = self.sessions.consumer_owner
        consumer_id = str(note.get("consumerId"))
        if kind == "consumer.closed":
            peer = owners.pop(consumer_id, None)
            if peer is not None:
                producer_id = peer.forget_consumer(consumer_id)
                if peer.resume_hash is not None:
                    with contextlib.suppress(*REDIS_ERRORS):
                        await self.store.remove_peer_media(
                            peer.room, peer.peer_id, f"consumer:{consumer_id}"
                        )
                local = self.sessions.rooms.get(peer.room)
                if local is not None:  # one camera fewer: re-ranked before the peer is told
                    await self.sessions.relayer(local, peer, "a consumer closed")
                await peer.send_event(
                    "consumerClosed",
                    {
                        "consumerId": note.get("consumerId"),
                        "producerId": producer_id or note.get("producerId"),
                    },
                )
        elif kind in CONSUMER_STATE:
            peer = owners.get(consumer_id)
            if peer is not None:
                producer_id = peer.consumers.get(consumer_id)
                await peer.send_event(
                    CONSUMER_STATE[kind],
                    {
                        "consumerId": note.get("consumerId"),
                        "producerId": producer_id or note.get("producerId"),
                    },
                )
        elif kind == "consumer.score":
            peer = owners.get(consumer_id)
            if peer is not None:
                await peer.send_event(
                    "consumerScore",
                    {"consumerId": note.get("consumerId"), "score": note.get("score")},
                )
        elif kind == "producer.wantedLayers":
            await self._wanted_layers(note)
        elif kind == "observer.activeSpeaker":
            await self._active_speaker(note)
        elif kind == "worker.died":
            # `{room}~{n}` is a further router of a spanning room: the room rejoins whole.
            for room in {str(r).split("~")[0] for r in note.get("roomIds") or []}:
                await self.resync.rejoin_room(room, "the media server restarted")

    async def _wanted_layers(self, note: Notification) -> None:
        """Dynacast: tell the publisher the highest layer its consumers want (-1: none)."""
        producer_id = str(note.get("producerId"))
        for local in self.sessions.rooms.values():
            for peer in local.peers.values():
                if producer_id in peer.producers:
                    await peer.send_event(
                        "producerLayers",
                        {"producerId": producer_id, "spatialLayer": note.get("spatialLayer")},
                    )
                    return

    async def _active_speaker(self, note: Notification) -> None:
        local = self.sessions.rooms.get(str(note.get("roomId")))
        if local is None or note.get("observerId") != local.speaker_observer:
            return
        producer_id = str(note.get("producerId"))
        owner = next(
            (p for p in await self._all_producers(local.name) if p.producer_id == producer_id),
            None,
        )
        if owner is not None:
            for peer in list(local.peers.values()):
                await peer.send_event(
                    "activeSpeaker", {"peerId": owner.peer_id, "producerId": producer_id}
                )
            await self.sessions.speaker_changed(local, owner.peer_id)

    async def _all_producers(self, room: str) -> list[ProducerRecord]:
        with contextlib.suppress(*REDIS_ERRORS):
            return await self.store.list_producers(room)
        return []
