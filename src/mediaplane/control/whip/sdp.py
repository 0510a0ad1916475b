"""SDP offer/answer for WHIP and WHEP <-> mediasoup's ORTC parameters.

Parsing and rendering go through aiortc's SDP model (`aiortc.sdp`, the same
one the aiortc bridge in mediaplane.peer uses), never through hand-written
string handling: an offer is parsed into `SessionDescription`, checked, turned
into mediasoup `rtpParameters` (WHIP: what the client sends) or
`rtpCapabilities` (WHEP: what the client can receive), and the answer is a
`SessionDescription` built from the transport's ICE/DTLS parameters and the
producers' or consumers' RTP parameters, rendered by aiortc.

Errors: `BadSdp` (400) for an offer that cannot be used as it is, with the
reason; `UnsupportedMedia` (406) when an m-section offers no codec the
room's router accepts.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from aiortc.rtcdtlstransport import RTCDtlsFingerprint, RTCDtlsParameters
from aiortc.rtcicetransport import RTCIceCandidate, RTCIceParameters
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.sdp import (
    GroupDescription,
    MediaDescription,
    SessionDescription,
    SsrcDescription,
    parse_h264_profile_level_id,
)

from mediaplane.control.errors import ControlError
from mediaplane.peer.ortc import codec_from_json, codec_to_json
from mediaplane.wire.ids import Json

MAX_SDP_BYTES = 64 * 1024
PROFILE = "UDP/TLS/RTP/SAVPF"


class BadSdp(ControlError):
    status = 400
    code = "bad_sdp"


class UnsupportedMedia(ControlError):
    status = 406
    code = "unsupported_media"


# parsing ----------------------------------------------------------------------
def parse(text: str, what: str = "offer") -> SessionDescription:
    """Parse with aiortc; any parser failure is the client's bad SDP."""
    if len(text.encode()) > MAX_SDP_BYTES:
        raise BadSdp(f"the {what} is larger than {MAX_SDP_BYTES} bytes")
    if not text.lstrip().startswith(("v=0", "a=", "m=")):
        raise BadSdp(f"the {what} is not SDP")
    try:
        desc = SessionDescription.parse(text)
    except AssertionError:
        raise BadSdp(
            f"malformed SDP {what}: an m=, c= or a=candidate line or a payload type "
            "is not well-formed"
        ) from None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise BadSdp(f"malformed SDP {what}: {type(e).__name__} {e}".strip()) from None
    except StopIteration:
        raise BadSdp(
            f"malformed SDP {what}: a=fmtp or a=rtcp-fb for an unknown payload type"
        ) from None
    return desc


@dataclass
class Offer:
    """A checked WHIP/WHEP offer."""

    desc: SessionDescription
    ufrag: str
    pwd: str
    fingerprints: list[RTCDtlsFingerprint]
    setup: str  # the offerer's DTLS role: auto (actpass), client (active), server (passive)

    @property
    def media(self) -> list[MediaDescription]:
        return list(self.desc.media)

    def mediasoup_dtls(self) -> Json:
        """The client's DTLS parameters for `transport.connect`, with the role it takes."""
        role = "server" if self.setup == "server" else "client"
        return {
            "role": role,
            "fingerprints": [
                {"algorithm": f.algorithm, "value": f.value} for f in self.fingerprints
            ],
        }

    def answer_role(self) -> str:
        """Our side's role in the answer: passive unless the client insists on passive."""
        return "client" if self.setup == "server" else "server"


def check_offer(text: str) -> Offer:
    desc = parse(text)
    if not desc.media:
        raise BadSdp("the offer has no m-section")
    first = desc.media[0]
    ice = first.ice
    if ice is None or not ice.usernameFragment or not ice.password:
        raise BadSdp("the offer has no a=ice-ufrag / a=ice-pwd")
    dtls = next((m.dtls for m in desc.media if m.dtls and m.dtls.fingerprints), None)
    if dtls is None:
        raise BadSdp("the offer has no a=fingerprint and a=setup (DTLS is required)")
    fingerprints = [f for f in dtls.fingerprints if _usable_fingerprint(f)]
    if not fingerprints:
        names = ", ".join(sorted(DIGEST_BYTES))
        raise BadSdp(f"the offer has no a=fingerprint with a known algorithm ({names}) and value")
    mids = [m.rtp.muxId for m in desc.media]
    if any(not mid for mid in mids):
        raise BadSdp("every m-section needs an a=mid")
    if len(set(mids)) != len(mids):
        raise BadSdp("the offer repeats an a=mid")
    live = [m for m in desc.media if m.port != 0 and m.kind in ("audio", "video")]
    if not live:
        raise BadSdp("the offer has no audio or video m-section")
    bundled = {str(i) for g in desc.group if g.semantic == "BUNDLE" for i in g.items}
    if len(live) > 1 and not {m.rtp.muxId for m in live} <= bundled:
        raise BadSdp("the offer must BUNDLE its m-sections (max-bundle, RFC 9725)")
    for m in live:
        if m.ice is None or (m.ice.usernameFragment, m.ice.password) != (
            ice.usernameFragment,
            ice.password,
        ):
            raise BadSdp("bundled m-sections must share one ICE ufrag/pwd")
        if not m.rtcp_mux and m.rtcp_port is not None:
            raise BadSdp(f"m-section {m.rtp.muxId}: rtcp-mux is required")
    return Offer(desc, str(ice.usernameFragment), str(ice.password), fingerprints, dtls.role)


# The DTLS fingerprint algorithms mediasoup knows (RFC 8122 names), by digest size.
DIGEST_BYTES = {"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}


def _usable_fingerprint(f: RTCDtlsFingerprint) -> bool:
    """A known algorithm and a value of its digest size in colon-separated hex pairs."""
    size = DIGEST_BYTES.get(f.algorithm.lower())
    pairs = f.value.split(":")
    return size == len(pairs) and all(re.fullmatch(r"[0-9A-Fa-f]{2}", p) for p in pairs)


# codecs -------------------------------------------------------------------------
def _h264_profile(params: Any) -> Any:
    try:
        return parse_h264_profile_level_id(str(params.get("profile-level-id", "42001f")))[0]
    except ValueError:
        return None


def codec_matches(offered: RTCRtpCodecParameters, cap: Json) -> bool:
    """The offered codec is the router's codec `cap` (mediasoup's strict match)."""
    mime = offered.mimeType.lower()
    if mime != str(cap["mimeType"]).lower() or offered.clockRate != cap["clockRate"]:
        return False
    params, cap_params = offered.parameters, cap.get("parameters") or {}
    if mime.startswith("audio/") and (offered.channels or 1) != (cap.get("channels") or 1):
        return False
    if mime == "video/h264":
        if int(params.get("packetization-mode", 0) or 0) != int(
            cap_params.get("packetization-mode", 0) or 0
        ):
            return False
        profile = _h264_profile(params)
        return profile is not None and profile == _h264_profile(cap_params)
    if mime == "video/vp9":
        return int(params.get("profile-id", 0) or 0) == int(cap_params.get("profile-id", 0) or 0)
    return True


def _router_codec(offered: RTCRtpCodecParameters, router_caps: Json) -> Json | None:
    return next((c for c in router_caps["codecs"] if codec_matches(offered, c)), None)


def _is_rtx(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


def _offered(media: MediaDescription) -> str:
    return ", ".join(f"{c.mimeType}/{c.clockRate}" for c in media.rtp.codecs) or "none"


def select_codecs(media: MediaDescription, router_caps: Json) -> list[RTCRtpCodecParameters]:
    """The offer's first codec the router accepts (in the offer's order), plus its RTX."""
    primary = next(
        (c for c in media.rtp.codecs if not _is_rtx(c) and _router_codec(c, router_caps)), None
    )
    if primary is None:
        raise UnsupportedMedia(
            f"m-section {media.rtp.muxId} ({media.kind}): none of the offered codecs "
            f"({_offered(media)}) is supported; the room accepts "
            + ", ".join(sorted({str(c["mimeType"]) for c in router_caps["codecs"]}))
        )
    rtx = [
        c for c in media.rtp.codecs if _is_rtx(c) and c.parameters.get("apt") == primary.payloadType
    ]
    return [primary, *rtx[:1]]


def _extensions(media: MediaDescription, router_caps: Json, *, sending: bool) -> list[Any]:
    """The offered header extensions the router supports in this direction."""
    wanted = "recvonly" if sending else "sendonly"  # router-side direction we cannot use
    uris = {
        h["uri"]
        for h in router_caps.get("headerExtensions", [])
        if h.get("kind") in (media.kind, "", None) and h.get("direction") != wanted
    }
    return [h for h in media.rtp.headerExtensions if h.uri in uris]


# WHIP: the client sends -------------------------------------------------------------
@dataclass
class PublishPlan:
    """One m-section of a WHIP offer: produced (rtp_parameters) or refused (reason)."""

    media: MediaDescription
    kind: Literal["audio", "video"] | None
    rtp_parameters: Json | None = None
    codecs: list[RTCRtpCodecParameters] = field(default_factory=list)
    extensions: list[Any] = field(default_factory=list)
    reason: str = ""


def plan_publish(offer: Offer, router_caps: Json) -> list[PublishPlan]:
    plans: list[PublishPlan] = []
    for m in offer.media:
        if m.kind not in ("audio", "video") or m.port == 0:
            plans.append(PublishPlan(m, None, reason=f"{m.kind} is not published"))
            continue
        kind: Literal["audio", "video"] = "audio" if m.kind == "audio" else "video"
        if m.direction not in ("sendonly", "sendrecv"):
            plans.append(PublishPlan(m, None, reason=f"direction {m.direction} sends nothing"))
            continue
        codecs = select_codecs(m, router_caps)
        ssrcs = [s.ssrc for s in m.ssrc]
        if not ssrcs:
            raise BadSdp(
                f"m-section {m.rtp.muxId} ({kind}) has no a=ssrc "
                "(simulcast with rid is not supported)"
            )
        fid = next((g for g in m.ssrc_group if g.semantic == "FID"), None)
        primary = int(fid.items[0]) if fid else ssrcs[0]
        encoding: Json = {"ssrc": primary}
        if fid and len(fid.items) > 1 and len(codecs) > 1:
            encoding["rtx"] = {"ssrc": int(fid.items[1])}
        else:
            codecs = codecs[:1]
        exts = _extensions(m, router_caps, sending=True)
        cname = next((s.cname for s in m.ssrc if s.cname), None) or f"whip-{m.rtp.muxId}"
        rtp_parameters = {
            "mid": str(m.rtp.muxId),
            "codecs": [codec_to_json(c) for c in codecs],
            "headerExtensions": [{"uri": h.uri, "id": h.id} for h in exts],
            "encodings": [encoding],
            "rtcp": {"cname": cname, "reducedSize": True},
        }
        plans.append(PublishPlan(m, kind, rtp_parameters, codecs, exts))
    if not any(p.rtp_parameters for p in plans):
        raise BadSdp("the offer sends no audio or video (WHIP m-sections are sendonly)")
    return plans


# WHEP: the client receives ------------------------------------------------------------
def receiving(m: MediaDescription) -> bool:
    return m.kind in ("audio", "video") and m.port != 0 and m.direction in ("recvonly", "sendrecv")


def whep_media_codecs(offer: Offer, room_caps: Json) -> list[Json]:
    """mediaCodecs for a WHEP session's own router: the offered codecs the room's router
    supports, each with the offer's payload type (a consumer sends on its router's
    payload types, and the client decodes only those of its offer)."""
    out: list[Json] = []
    used_pts: set[int] = set()
    taken: set[int] = set()
    for m in offer.media:
        if not receiving(m):
            continue
        for c in m.rtp.codecs:
            router = None if _is_rtx(c) else _router_codec(c, room_caps)
            pt = c.payloadType
            if router is None or pt is None or pt in used_pts or id(router) in taken:
                continue
            used_pts.add(pt)
            taken.add(id(router))
            codec: Json = {
                "kind": m.kind,
                "mimeType": router["mimeType"],
                "clockRate": router["clockRate"],
                "preferredPayloadType": c.payloadType,
                "parameters": dict(router.get("parameters") or {}),
            }
            if "channels" in router:
                codec["channels"] = router["channels"]
            out.append(codec)
    if not out:
        offered = "; ".join(_offered(m) for m in offer.media if receiving(m)) or "nothing"
        raise UnsupportedMedia(
            f"no offered codec can be sent by this room (offered: {offered}); the room sends "
            + ", ".join(sorted({str(c["mimeType"]) for c in room_caps["codecs"]}))
        )
    return _fit_payload_types(out[:16])


# mediasoup gives a router's RTX codecs the first free of these, in this order
# (ortc.js DynamicPayloadTypes); a media codec must not want one taken before it.
MEDIASOUP_DYNAMIC_PTS = [*range(100, 128), *range(96, 100)]


def _fit_payload_types(codecs: list[Json]) -> list[Json]:
    """Order mediaCodecs so mediasoup's RTX allocation spares the payload types the
    codecs keep; a codec whose type would still be taken is left out."""

    def position(c: Json) -> int:
        pt = c["preferredPayloadType"]
        return MEDIASOUP_DYNAMIC_PTS.index(pt) if pt in MEDIASOUP_DYNAMIC_PTS else -1

    pool = list(MEDIASOUP_DYNAMIC_PTS)
    taken: set[int] = set()
    kept: list[Json] = []
    for c in sorted(codecs, key=position):
        pt = c["preferredPayloadType"]
        if pt in taken or (c["kind"] == "video" and len(pool) < 2):
            continue
        if pt in pool:
            pool.remove(pt)
        taken.add(pt)
        kept.append(c)
        if c["kind"] == "video":
            taken.add(pool.pop(0))
    return kept


def _cap(kind: str, router: Json, offered: RTCRtpCodecParameters) -> Json:
    cap: Json = {
        "kind": kind,
        "mimeType": router["mimeType"],
        "clockRate": router["clockRate"],
        "preferredPayloadType": router["preferredPayloadType"],
        "parameters": dict(router.get("parameters") or {}),
        "rtcpFeedback": [
            {"type": fb.type, "parameter": fb.parameter or ""} for fb in offered.rtcpFeedback
        ],
    }
    if "channels" in router:
        cap["channels"] = router["channels"]
    return cap


def receive_capabilities(media: MediaDescription, router_caps: Json, *, keep_mid: bool) -> Json:
    """rtpCapabilities for `transport.consume` from one recvonly m-section: the router's
    codecs whose payload type is the one the offer gives the same codec (RTX likewise)."""
    codecs: list[Json] = []
    for c in media.rtp.codecs:
        if _is_rtx(c):
            continue
        router = next(
            (
                r
                for r in router_caps["codecs"]
                if r.get("preferredPayloadType") == c.payloadType and codec_matches(c, r)
            ),
            None,
        )
        if router is not None:
            codecs.append(_cap(str(media.kind), router, c))
    media_pts = {c["preferredPayloadType"] for c in codecs}
    for c in media.rtp.codecs:
        apt = c.parameters.get("apt")
        if not _is_rtx(c) or apt not in media_pts:
            continue
        router = next(
            (
                r
                for r in router_caps["codecs"]
                if str(r["mimeType"]).lower().endswith("/rtx")
                and r.get("preferredPayloadType") == c.payloadType
                and (r.get("parameters") or {}).get("apt") == apt
            ),
            None,
        )
        if router is not None:
            codecs.append(_cap(str(media.kind), router, c))
    if not codecs:
        raise UnsupportedMedia(
            f"m-section {media.rtp.muxId} ({media.kind}): none of the offered codecs "
            f"({_offered(media)}) can be sent by this room"
        )
    exts = [
        {"kind": media.kind, "uri": h.uri, "preferredId": h.id, "direction": "sendrecv"}
        for h in _extensions(media, router_caps, sending=False)
        if keep_mid or h.uri != "urn:ietf:params:rtp-hdrext:sdes:mid"
    ]
    return {"codecs": codecs, "headerExtensions": exts}


# answers ---------------------------------------------------------------------------
def _candidates(transport: Json) -> list[RTCIceCandidate]:
    out = []
    for c in transport["iceCandidates"]:
        cand = RTCIceCandidate(
            component=1,
            foundation=str(c["foundation"]),
            ip=c.get("address") or c.get("ip"),
            port=int(c["port"]),
            priority=int(c["priority"]),
            protocol=str(c["protocol"]),
            type=str(c["type"]),
        )
        if c["protocol"] == "tcp":
            cand.tcpType = c.get("tcpType") or "passive"
        out.append(cand)
    return out


def _transport_section(
    m: MediaDescription, transport: Json, role: str, *, with_candidates: bool
) -> None:
    candidates = _candidates(transport)
    udp = next((c for c in candidates if c.protocol == "udp"), None)
    m.host = udp.ip if udp else "0.0.0.0"
    m.rtcp_host, m.rtcp_port, m.rtcp_mux = "0.0.0.0", 9, True
    ice = transport["iceParameters"]
    m.ice = RTCIceParameters(
        usernameFragment=ice["usernameFragment"], password=ice["password"], iceLite=True
    )
    m.ice_candidates = candidates if with_candidates else []
    m.ice_candidates_complete = with_candidates
    fps = transport["dtlsParameters"]["fingerprints"]
    m.dtls = RTCDtlsParameters(
        fingerprints=[RTCDtlsFingerprint(algorithm=f["algorithm"], value=f["value"]) for f in fps],
        role=role,
    )


def _rejected(o: MediaDescription, transport: Json) -> MediaDescription:
    m = MediaDescription(kind=o.kind, port=0, profile=o.profile, fmt=o.fmt[:1])
    m.direction = "inactive"
    m.rtp.muxId = o.rtp.muxId
    ice = transport["iceParameters"]
    m.ice = RTCIceParameters(usernameFragment=ice["usernameFragment"], password=ice["password"])
    return m


def _session(media: list[MediaDescription]) -> str:
    desc = SessionDescription()
    desc.origin = f"mediaplane {random.getrandbits(62)} 1 IN IP4 127.0.0.1"
    accepted = [m.rtp.muxId for m in media if m.port != 0]
    desc.group = [GroupDescription(semantic="BUNDLE", items=list(accepted))]
    desc.msid_semantic = [GroupDescription(semantic="WMS", items=["*"])]
    desc.media = media
    return str(desc)


def publish_answer(offer: Offer, plans: list[PublishPlan], transport: Json) -> str:
    """The WHIP answer: mediasoup receives every accepted m-section."""
    media: list[MediaDescription] = []
    first = True
    for plan in plans:
        o = plan.media
        if plan.rtp_parameters is None:
            media.append(_rejected(o, transport))
            continue
        m = MediaDescription(
            kind=o.kind, port=9, profile=PROFILE, fmt=[c.payloadType for c in plan.codecs]
        )
        m.direction = "recvonly"
        m.rtp.codecs = plan.codecs
        m.rtp.headerExtensions = plan.extensions
        m.rtp.muxId = o.rtp.muxId
        _transport_section(m, transport, offer.answer_role(), with_candidates=first)
        first = False
        media.append(m)
    return _session(media)


@dataclass
class PlayPlan:
    """One m-section of a WHEP offer: the consumer sending on it, or none."""

    media: MediaDescription
    consumer: Json | None = None


def play_answer(offer: Offer, plans: list[PlayPlan], transport: Json, stream_id: str) -> str:
    """The WHEP answer: mediasoup sends each consumer on its m-section."""
    media: list[MediaDescription] = []
    first = True
    for plan in plans:
        o, consumer = plan.media, plan.consumer
        if consumer is None:
            media.append(_rejected(o, transport))
            continue
        rtp = consumer["rtpParameters"]
        codecs = [codec_from_json(c) for c in rtp["codecs"]]
        m = MediaDescription(
            kind=o.kind, port=9, profile=PROFILE, fmt=[c.payloadType for c in codecs]
        )
        m.direction = "sendonly"
        m.rtp.codecs = codecs
        m.rtp.headerExtensions = [
            RTCRtpHeaderExtensionParameters(id=h["id"], uri=h["uri"])
            for h in rtp.get("headerExtensions", [])
        ]
        m.rtp.muxId = o.rtp.muxId
        cname = (rtp.get("rtcp") or {}).get("cname") or stream_id
        enc = rtp["encodings"][0]
        m.ssrc = [SsrcDescription(ssrc=enc["ssrc"], cname=cname)]
        if "rtx" in enc:
            m.ssrc.append(SsrcDescription(ssrc=enc["rtx"]["ssrc"], cname=cname))
            m.ssrc_group = [GroupDescription("FID", [enc["ssrc"], enc["rtx"]["ssrc"]])]
        m.msid = f"{stream_id} {consumer['consumerId']}"
        _transport_section(m, transport, offer.answer_role(), with_candidates=first)
        first = False
        media.append(m)
    return _session(media)


# trickle ICE / ICE restart (application/trickle-ice-sdpfrag, RFC 8840) ---------------
@dataclass
class Fragment:
    ufrag: str | None
    pwd: str | None
    candidates: int


def parse_fragment(text: str) -> Fragment:
    desc = parse(text, "sdpfrag")
    if not desc.media:
        # Session-level ICE lines only (how clients send an ICE restart): aiortc keeps
        # session-level attributes on the m-sections, so give it one to carry them.
        desc = parse(text.rstrip("\r\n") + "\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n", "sdpfrag")
    ufrag = pwd = None
    count = 0
    for m in desc.media:
        if m.ice is not None:
            ufrag = ufrag or m.ice.usernameFragment
            pwd = pwd or m.ice.password
        count += len(m.ice_candidates)
    if ufrag is None and count == 0:
        raise BadSdp("the sdpfrag carries neither ICE credentials nor candidates")
    return Fragment(ufrag, pwd, count)


def restart_fragment(offer: Offer, transport: Json) -> str:
    """The server's new ICE credentials and candidates, as an sdpfrag."""
    first = next(m for m in offer.media if m.port != 0)
    m = MediaDescription(kind=first.kind, port=9, profile=PROFILE, fmt=first.fmt[:1])
    m.rtp.muxId = first.rtp.muxId
    _transport_section(m, transport, offer.answer_role(), with_candidates=True)
    # The addresses do not change on a restart, only the credentials. UDP candidates
    # only: the whip-whep npm client (1.2.0) splices several candidates back with ","
    # and breaks its own remote description; one UDP candidate per listen IP is enough.
    m.ice_candidates = [c for c in m.ice_candidates if c.protocol == "udp"]
    m.host = m.rtcp_host = m.rtcp_port = m.dtls = None
    m.rtcp_mux = False
    return str(m)
