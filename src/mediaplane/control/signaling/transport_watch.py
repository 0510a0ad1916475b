"""End a signaling participant whose WebRTC transport the SFU reports lost.

The SFU notifies every transport's ICE and DTLS state changes
(`transport.iceStateChange`, `transport.dtlsStateChange`). A participant whose
transport's DTLS is `failed` or `closed` is ended at once; one whose ICE stays
`disconnected` (or `failed`) for `lost_after_s` is ended then, unless ICE comes back
first. Ending is `RoomManager.leave` (the others get `producerClosed` and
`peerLeft`) and the socket closed with CLOSE_MEDIA_LOST, after which the call page
rejoins (docs/signaling.md#keep-alive-and-lost-media).

Task ownership: the watch owns one grace task per lost transport (cancelled when
ICE recovers, the transport is forgotten, or the watch closes).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from mediaplane.control.rooms import LocalPeer, RoomManager
from mediaplane.control.tasks import OwnedTasks
from mediaplane.sfu.models import Notification

log = logging.getLogger(__name__)

CLOSE_MEDIA_LOST = 4010

Verdict = Literal["lost", "grace", "recovered", "none"]


def verdict(note: Notification) -> Verdict:
    """What one transport-state notification means for its participant."""
    if note.notification == "transport.dtlsStateChange":
        return "lost" if note.get("dtlsState") in ("failed", "closed") else "none"
    if note.notification == "transport.iceStateChange":
        ice = note.get("iceState")
        if ice in ("disconnected", "failed"):
            return "grace"
        if ice in ("connected", "completed"):
            return "recovered"
    return "none"


@dataclass
class _Watched:
    peer: LocalPeer
    grace: asyncio.Task[None] | None = None


class TransportWatch:
    def __init__(self, rooms: RoomManager, *, lost_after_s: float) -> None:
        self.rooms = rooms
        self.lost_after_s = lost_after_s
        self._watched: dict[str, _Watched] = {}
        self.tasks = OwnedTasks()

    async def start(self) -> None:
        self.rooms.pool.add_listener(self._on_sfu)

    async def close(self) -> None:
        self.rooms.pool.remove_listener(self._on_sfu)
        self._watched.clear()
        await self.tasks.cancel()

    def watch(self, transport_id: str, peer: LocalPeer) -> None:
        self._watched[transport_id] = _Watched(peer)

    def forget(self, peer: LocalPeer) -> None:
        """The participant's session ended: its transports are no longer watched."""
        for transport_id, watched in list(self._watched.items()):
            if watched.peer is peer:
                self._cancel_grace(watched)
                del self._watched[transport_id]

    def _on_sfu(self, note: Notification) -> None:
        transport_id = str(note.get("transportId"))
        watched = self._watched.get(transport_id)
        if watched is None:
            return
        match verdict(note):
            case "lost":
                reason = f"media connection lost (DTLS {note.get('dtlsState')})"
                self._end(watched.peer, reason)
            case "grace":
                if watched.grace is None:
                    watched.grace = self.tasks.spawn(
                        self._grace(transport_id, watched, str(note.get("iceState"))),
                        f"transport-grace {transport_id}",
                    )
            case "recovered":
                self._cancel_grace(watched)
            case "none":
                pass

    async def _grace(self, transport_id: str, watched: _Watched, ice: str) -> None:
        await asyncio.sleep(self.lost_after_s)
        watched.grace = None
        if self._watched.get(transport_id) is watched:
            self._end(watched.peer, f"media connection lost (ICE {ice} {self.lost_after_s:g} s)")

    def _cancel_grace(self, watched: _Watched) -> None:
        if watched.grace is not None and watched.grace is not asyncio.current_task():
            watched.grace.cancel()
        watched.grace = None

    def _end(self, peer: LocalPeer, reason: str) -> None:
        self.forget(peer)
        if peer.away_since is not None:
            # Its socket is gone and its resume grace period runs: that decides.
            log.info("room=%s peer=%s away; not ended: %s", peer.room, peer.peer_id, reason)
            return
        self.tasks.spawn(self._leave(peer, reason), f"transport-lost {peer.peer_id}")

    async def _leave(self, peer: LocalPeer, reason: str) -> None:
        log.warning("ending participant room=%s peer=%s: %s", peer.room, peer.peer_id, reason)
        await self.rooms.leave(peer, reason)
        await peer.disconnect(CLOSE_MEDIA_LOST, reason)
