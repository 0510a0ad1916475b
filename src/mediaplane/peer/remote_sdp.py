"""Render the remote description aiortc needs, from mediasoup's parameters.

Built with aiortc's own SDP model and rendered by it, never by string
concatenation: a send-side answer (mediasoup receives) and a receive-side offer
(mediasoup sends, one m-section per consumer).
"""

from __future__ import annotations

import random

from aiortc.sdp import GroupDescription, MediaDescription, SessionDescription, SsrcDescription

from mediaplane.peer import ortc
from mediaplane.peer.ortc import Json


def _session(media: list[MediaDescription], session_id: int, version: int) -> SessionDescription:
    desc = SessionDescription()
    desc.origin = f"mediasoup-python {session_id} {version} IN IP4 0.0.0.0"
    desc.group = [GroupDescription(semantic="BUNDLE", items=[m.rtp.muxId for m in media])]
    desc.msid_semantic = [GroupDescription(semantic="WMS", items=["*"])]
    desc.media = media
    return desc


def _transport_section(
    m: MediaDescription, transport: Json, dtls_role: str, *, first: bool
) -> None:
    candidates = ortc.ice_candidates(transport)
    m.host = candidates[0].ip if candidates else "127.0.0.1"
    m.port = candidates[0].port if candidates else 7
    m.rtcp_host, m.rtcp_port, m.rtcp_mux = "0.0.0.0", 9, True
    m.ice = ortc.ice_parameters(transport)
    m.ice_candidates = candidates if first else []
    m.ice_candidates_complete = first
    m.dtls = ortc.remote_dtls(transport, dtls_role)


def send_answer(offer: SessionDescription, transport: Json, router_caps: Json) -> str:
    """Answer to aiortc's sending offer: mediasoup (DTLS server) receives every m-section."""
    media = []
    for i, o in enumerate(offer.media):
        codecs = ortc.select_send_codecs(o, router_caps)
        m = MediaDescription(
            kind=o.kind, port=7, profile="UDP/TLS/RTP/SAVPF", fmt=[c.payloadType for c in codecs]
        )
        m.direction = "recvonly"
        m.rtp.codecs = codecs
        m.rtp.headerExtensions = ortc.router_header_extensions(o, router_caps)
        m.rtp.muxId = o.rtp.muxId
        _transport_section(m, transport, "server", first=i == 0)
        media.append(m)
    return str(_session(media, random.getrandbits(32), 1))


class RecvOffer:
    """The growing offer of a receive transport: one m-section per consumer."""

    def __init__(self, transport: Json) -> None:
        self._transport = transport
        self._media: list[MediaDescription] = []
        self._session_id = random.getrandbits(32)
        self._version = 0

    def add_consumer(self, consumer: Json, *, stream_id: str) -> str:
        """Add a consumer's m-section; returns its mid."""
        rtp = consumer["rtpParameters"]
        mid = str(rtp.get("mid") or len(self._media))
        codecs = [ortc.codec_from_json(c) for c in rtp["codecs"]]
        m = MediaDescription(
            kind=consumer["kind"],
            port=7,
            profile="UDP/TLS/RTP/SAVPF",
            fmt=[c.payloadType for c in codecs],
        )
        m.direction = "sendonly"
        m.rtp.codecs = codecs
        m.rtp.headerExtensions = ortc.header_extensions_from_json(rtp.get("headerExtensions", []))
        m.rtp.muxId = mid
        cname = (rtp.get("rtcp") or {}).get("cname") or stream_id
        enc = rtp["encodings"][0]
        m.ssrc = [SsrcDescription(ssrc=enc["ssrc"], cname=cname)]
        if "rtx" in enc:
            m.ssrc.append(SsrcDescription(ssrc=enc["rtx"]["ssrc"], cname=cname))
            m.ssrc_group = [GroupDescription("FID", [enc["ssrc"], enc["rtx"]["ssrc"]])]
        m.msid = f"{stream_id} {consumer['consumerId']}"
        self._media.append(m)
        return mid

    def render(self) -> str:
        self._version += 1
        for i, m in enumerate(self._media):
            _transport_section(m, self._transport, "auto", first=i == 0)
        return str(_session(self._media, self._session_id, self._version))
