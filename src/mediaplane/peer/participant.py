"""MediasoupPeer: publish and receive through mediasoup WebRTC transports with aiortc.

Like mediasoup-client, one RTCPeerConnection per direction: the send side is
the SDP offerer (mediasoup answers as DTLS server), the receive side is the
answerer of an offer rendered from the consumers' parameters. Signaling is a
small protocol so the same peer runs over the SFU RPC (tests, bots) or over
the control plane's WebSocket signaling.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription

from mediaplane.peer import ortc
from mediaplane.peer.ortc import Json
from mediaplane.peer.remote_sdp import RecvOffer, send_answer
from mediaplane.sfu.client import SfuClient

log = logging.getLogger(__name__)


class PeerSignaling(Protocol):
    """What a peer needs from the server side (camelCase mediasoup shapes)."""

    async def create_webrtc_transport(self, direction: str) -> Json: ...
    async def connect_transport(self, transport_id: str, dtls_parameters: Json) -> None: ...
    async def produce(
        self, transport_id: str, kind: str, rtp_parameters: Json, source: str
    ) -> str: ...
    async def consume(
        self, transport_id: str, producer_id: str, rtp_capabilities: Json
    ) -> Json: ...
    async def resume_consumer(self, consumer_id: str) -> None: ...


class SfuSignaling:
    """PeerSignaling straight over the SFU RPC (no control plane)."""

    def __init__(self, client: SfuClient, router_id: str) -> None:
        self.client = client
        self.router_id = router_id

    async def create_webrtc_transport(self, direction: str) -> Json:
        info = await self.client.create_webrtc_transport(
            self.router_id, app_data={"direction": direction}
        )
        return info.model_dump(by_alias=True)

    async def connect_transport(self, transport_id: str, dtls_parameters: Json) -> None:
        await self.client.connect_transport(transport_id, dtls_parameters)

    async def produce(self, transport_id: str, kind: str, rtp_parameters: Json, source: str) -> str:
        info = await self.client.produce(
            transport_id, kind, rtp_parameters, app_data={"source": source}
        )
        return info.producer_id

    async def consume(self, transport_id: str, producer_id: str, rtp_capabilities: Json) -> Json:
        info = await self.client.consume(transport_id, producer_id, rtp_capabilities, paused=True)
        return info.model_dump(by_alias=True)

    async def resume_consumer(self, consumer_id: str) -> None:
        await self.client.resume_consumer(consumer_id)


class MediasoupPeer:
    def __init__(
        self,
        signaling: PeerSignaling,
        router_rtp_capabilities: Json,
        ice_servers: list[Json] | None = None,
    ) -> None:
        """`ice_servers`: the join reply's `iceServers` (TURN with credentials), used by
        both peer connections (aiortc relays over the first TURN URL it supports)."""
        self.signaling = signaling
        self.router_caps = router_rtp_capabilities
        self.rtp_capabilities = ortc.receive_rtp_capabilities(router_rtp_capabilities)
        servers = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in ice_servers or []
        ]
        self._config = RTCConfiguration(iceServers=servers)
        self._send_pc: RTCPeerConnection | None = None
        self._send_transport: Json | None = None
        self._recv_pc: RTCPeerConnection | None = None
        self._recv_transport: Json | None = None
        self._recv_offer: RecvOffer | None = None
        self._stream_id = uuid.uuid4().hex
        self._lock = asyncio.Lock()
        self.producers: dict[str, MediaStreamTrack] = {}
        self.consumers: dict[str, Json] = {}

    @property
    def send_transport(self) -> Json | None:
        """The SFU's send transport as created (ICE candidates, DTLS), once publishing."""
        return self._send_transport

    # sending ------------------------------------------------------------
    async def publish(self, track: MediaStreamTrack, source: str | None = None) -> str:
        """Send `track`; returns the producer id."""
        async with self._lock:
            if self._send_pc is None:
                self._send_transport = await self.signaling.create_webrtc_transport("send")
                self._send_pc = RTCPeerConnection(self._config)
            pc, transport = self._send_pc, self._send_transport
            assert transport is not None
            pc.addTransceiver(track, direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            local = SessionDescription.parse(pc.localDescription.sdp)
            answer = send_answer(local, transport, self.router_caps)
            if len(pc.getTransceivers()) == 1:
                # Our answer says mediasoup is the DTLS server, so we are the client.
                dtls = ortc.local_dtls_parameters(local, "client")
                await self.signaling.connect_transport(transport["transportId"], dtls)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            media = local.media[-1]
            rtp_parameters = ortc.sending_rtp_parameters(media, self.router_caps)
            producer_id = await self.signaling.produce(
                transport["transportId"], track.kind, rtp_parameters, source or track.kind
            )
            self.producers[producer_id] = track
            log.info("published %s as producer %s", track.kind, producer_id)
            return producer_id

    # receiving ----------------------------------------------------------
    async def subscribe(self, producer_id: str) -> tuple[str, MediaStreamTrack]:
        """Receive a producer; returns (consumer id, the remote track)."""
        async with self._lock:
            first = self._recv_pc is None
            if first:
                self._recv_transport = await self.signaling.create_webrtc_transport("recv")
                self._recv_pc = RTCPeerConnection(self._config)
                self._recv_offer = RecvOffer(self._recv_transport)
            pc, transport, offer = self._recv_pc, self._recv_transport, self._recv_offer
            assert pc is not None and transport is not None and offer is not None
            consumer = await self.signaling.consume(
                transport["transportId"], producer_id, self.rtp_capabilities
            )
            mid = offer.add_consumer(consumer, stream_id=self._stream_id)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.render(), type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            if first:
                local = SessionDescription.parse(pc.localDescription.sdp)
                setup = local.media[0].dtls.role if local.media[0].dtls else "client"
                role = "server" if setup == "server" else "client"
                dtls = ortc.local_dtls_parameters(local, role)
                await self.signaling.connect_transport(transport["transportId"], dtls)
            transceiver = next(t for t in pc.getTransceivers() if t.mid == mid)
            await self.signaling.resume_consumer(consumer["consumerId"])
            self.consumers[consumer["consumerId"]] = consumer
            return consumer["consumerId"], transceiver.receiver.track

    @property
    def send_transport_id(self) -> str | None:
        return self._send_transport["transportId"] if self._send_transport else None

    @property
    def recv_transport_id(self) -> str | None:
        return self._recv_transport["transportId"] if self._recv_transport else None

    def connection_states(self) -> dict[str, Any]:
        return {
            "send": self._send_pc.connectionState if self._send_pc else None,
            "recv": self._recv_pc.connectionState if self._recv_pc else None,
        }

    async def inbound_rtp_stats(self) -> list[dict[str, Any]]:
        """aiortc's inbound-rtp stats of every received track: ssrc, kind,
        packetsReceived, packetsLost, jitter (in RTP clock units)."""
        out: list[dict[str, Any]] = []
        if self._recv_pc is None:
            return out
        for transceiver in self._recv_pc.getTransceivers():
            report = await transceiver.receiver.getStats()
            for stat in report.values():
                if getattr(stat, "type", "") == "inbound-rtp":
                    out.append({
                        "ssrc": stat.ssrc, "kind": stat.kind,
                        "packetsReceived": stat.packetsReceived,
                        "packetsLost": stat.packetsLost, "jitter": stat.jitter,
                    })  # fmt: skip
        return out

    async def close(self) -> None:
        """Close both peer connections. Idempotent."""
        for pc in (self._send_pc, self._recv_pc):
            if pc is not None:
                await pc.close()
        self._send_pc = self._recv_pc = None
