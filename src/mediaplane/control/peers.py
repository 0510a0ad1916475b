"""A participant connected to this control-plane instance."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mediaplane.control.auth import Principal
from mediaplane.control.errors import NotFound
from mediaplane.state.models import PeerKind, PeerRecord, ProducerRecord

Json = dict[str, Any]
EventSink = Callable[[str, Json], Awaitable[None]]
Disconnect = Callable[[int, str], Awaitable[None]]


@dataclass
class LocalPeer:
    peer_id: str
    room: str
    principal: Principal
    display_name: str
    instance: str
    send_event: EventSink
    disconnect: Disconnect
    joined_at: float = field(default_factory=time.time)
    transports: dict[str, str] = field(default_factory=dict)  # id -> "send" | "recv"
    producers: dict[str, ProducerRecord] = field(default_factory=dict)
    consumers: dict[str, str] = field(default_factory=dict)  # consumer id -> producer id
    rtp_capabilities: Json | None = None
    kind: PeerKind = "participant"
    router_id: str | None = None  # a router of its room other than the first (spanning)

    @property
    def identity(self) -> str:
        return self.principal.identity

    def record(self) -> PeerRecord:
        return PeerRecord(
            peer_id=self.peer_id,
            identity=self.identity,
            name=self.display_name,
            instance=self.instance,
            kind=self.kind,
            router_id=self.router_id,
            joined_at=self.joined_at,
        )

    def public(self) -> Json:
        """What other participants see of this peer."""
        return {
            "peerId": self.peer_id,
            "identity": self.identity,
            "displayName": self.display_name,
            "kind": self.kind,
        }

    def owns_transport(self, transport_id: str) -> str:
        if transport_id not in self.transports:
            raise NotFound(f"no transport {transport_id} for this peer")
        return self.transports[transport_id]
