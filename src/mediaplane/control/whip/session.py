"""One WHIP or WHEP session: a room participant without a signaling socket.

The session's `LocalPeer` joins the room through the room sessions like any peer
(announced to the others, its producers in Redis, so recordable). Events the
room sends to it go nowhere (there is no socket to carry them) except those
that end it: being replaced, kicked, or asked to rejoin after a worker died.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from mediaplane.control.rooms import LocalPeer
from mediaplane.control.whip.sdp import Offer
from mediaplane.control.whip.slots import SessionSlot
from mediaplane.sfu import SfuClient
from mediaplane.wire.ids import Json

Kind = Literal["whip", "whep"]


def new_etag() -> str:
    return f'"{uuid.uuid4().hex}"'


@dataclass
class MediaSession:
    session_id: str
    kind: Kind
    peer: LocalPeer
    offer: Offer
    transport: Json
    sfu: SfuClient  # the SFU node hosting the room's router
    etag: str = field(default_factory=new_etag)
    created: float = field(default_factory=time.monotonic)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    client_ufrag: str = ""
    video_consumers: list[str] = field(default_factory=list)
    ice_lost_at: float | None = None
    router_id: str | None = None  # WHEP: the session's own router (closed with it)
    ended: bool = False
    slot: SessionSlot | None = None  # its place under the WHIP caps (whip/slots.py)

    @property
    def transport_id(self) -> str:
        return str(self.transport["transportId"])

    @property
    def room(self) -> str:
        return self.peer.room

    def describe(self) -> str:
        return f"{self.kind} session={self.session_id} room={self.room} peer={self.peer.peer_id}"


class SessionPeerEvents:
    """The LocalPeer's event sink and disconnect hook for a session."""

    def __init__(self, on_gone: Callable[[str], None], watched_peer: str | None = None) -> None:
        self._on_gone = on_gone
        self.watched_peer = watched_peer  # WHEP: the participant played; its leave ends us
        self.events = 0

    async def send_event(self, event: str, data: Json) -> None:
        self.events += 1
        if event == "rejoin":
            self._on_gone(f"the media server lost the room: {data.get('reason', '')}")
        elif event == "peerLeft" and self.watched_peer and data.get("peerId") == self.watched_peer:
            self._on_gone("the participant played left the room")

    async def disconnect(self, code: int, reason: str) -> None:
        self._on_gone(reason)
