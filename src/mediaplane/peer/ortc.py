"""mediasoup parameters <-> aiortc's SDP model (pure functions)."""

from __future__ import annotations

from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsFingerprint, RTCDtlsParameters
from aiortc.rtcicetransport import RTCIceCandidate, RTCIceParameters
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
)
from aiortc.sdp import MediaDescription, SessionDescription

Json = dict[str, Any]

# Header extensions aiortc understands; others are left out of what we negotiate.
AIORTC_HEADER_EXTENSIONS = {
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
}
# Codecs aiortc can encode and decode.
AIORTC_CODECS = {"audio/opus", "audio/pcmu", "audio/pcma", "video/vp8", "video/h264", "video/rtx"}


def _same_codec(a_mime: str, a_rate: int, a_ch: int | None, b: Json) -> bool:
    if a_mime.lower() != str(b["mimeType"]).lower() or a_rate != b["clockRate"]:
        return False
    return not a_mime.lower().startswith("audio/") or (a_ch or 1) == (b.get("channels") or 1)


def router_accepts(codec: RTCRtpCodecParameters, router_caps: Json) -> bool:
    return any(
        _same_codec(codec.mimeType, codec.clockRate, codec.channels, c)
        for c in router_caps["codecs"]
    )


def select_send_codecs(media: MediaDescription, router_caps: Json) -> list[RTCRtpCodecParameters]:
    """The offered codecs the router accepts: the first media codec, plus its RTX."""
    primary = next(
        (
            c
            for c in media.rtp.codecs
            if c.mimeType.lower() != "video/rtx" and router_accepts(c, router_caps)
        ),
        None,
    )
    if primary is None:
        offered = ", ".join(c.mimeType for c in media.rtp.codecs)
        raise ValueError(f"the router accepts none of the offered {media.kind} codecs: {offered}")
    rtx = [
        c
        for c in media.rtp.codecs
        if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") == primary.payloadType
    ]
    return [primary, *rtx]


def router_header_extensions(media: MediaDescription, router_caps: Json) -> list[Any]:
    uris = {
        h["uri"]
        for h in router_caps.get("headerExtensions", [])
        if h.get("kind") in (media.kind, "", None)
    }
    return [h for h in media.rtp.headerExtensions if h.uri in uris]


def _fmtp_value(key: str, value: Any) -> Any:
    """An fmtp value as mediasoup(-client) has it: numbers as numbers (mediasoup compares
    H264's packetization-mode by value: '1' is not 1); profile-level-id stays a string."""
    if key != "profile-level-id" and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def codec_to_json(codec: RTCRtpCodecParameters) -> Json:
    """One codec of aiortc's SDP model as mediasoup's RtpCodecParameters JSON."""
    out: Json = {
        "mimeType": codec.mimeType,
        "payloadType": codec.payloadType,
        "clockRate": codec.clockRate,
        "parameters": {k: _fmtp_value(k, v) for k, v in codec.parameters.items()},
        "rtcpFeedback": [
            {"type": fb.type, "parameter": fb.parameter or ""} for fb in codec.rtcpFeedback
        ],
    }
    if codec.mimeType.lower().startswith("audio/"):
        out["channels"] = codec.channels or 1
    return out


def sending_rtp_parameters(media: MediaDescription, router_caps: Json) -> Json:
    """rtpParameters for `transport.produce` from one sending m-section of aiortc's offer."""
    codecs = select_send_codecs(media, router_caps)
    if not media.ssrc:
        raise ValueError(f"the {media.kind} m-section has no ssrc")
    primary_ssrc = media.ssrc[0].ssrc
    encoding: Json = {"ssrc": primary_ssrc}
    for group in media.ssrc_group:
        if group.semantic == "FID" and int(group.items[0]) == primary_ssrc:
            encoding["rtx"] = {"ssrc": int(group.items[1])}
    return {
        "mid": media.rtp.muxId,
        "codecs": [codec_to_json(c) for c in codecs],
        "headerExtensions": [
            {"uri": h.uri, "id": h.id} for h in router_header_extensions(media, router_caps)
        ],
        "encodings": [encoding],
        "rtcp": {"cname": media.ssrc[0].cname or "", "reducedSize": True},
    }


def local_dtls_parameters(description: SessionDescription, role: str) -> Json:
    """DTLS parameters for `transport.connect` from aiortc's local description."""
    dtls = next((m.dtls for m in description.media if m.dtls), None)
    if dtls is None:
        raise ValueError("the local description has no DTLS fingerprint")
    return {
        "role": role,
        "fingerprints": [{"algorithm": f.algorithm, "value": f.value} for f in dtls.fingerprints],
    }


def receive_rtp_capabilities(router_caps: Json) -> Json:
    """Our rtpCapabilities for consuming: the router's codecs aiortc can decode."""
    kept = [c for c in router_caps["codecs"] if str(c["mimeType"]).lower() in AIORTC_CODECS]
    media_pts = {c["preferredPayloadType"] for c in kept if c["mimeType"].lower() != "video/rtx"}
    codecs = [
        c
        for c in kept
        if c["mimeType"].lower() != "video/rtx" or c.get("parameters", {}).get("apt") in media_pts
    ]
    exts = [
        h
        for h in router_caps.get("headerExtensions", [])
        if h["uri"] in AIORTC_HEADER_EXTENSIONS and h.get("direction", "sendrecv") != "sendonly"
    ]
    return {"codecs": codecs, "headerExtensions": exts}


# remote side: mediasoup's transport as aiortc's SDP model ------------------
def ice_parameters(transport: Json) -> RTCIceParameters:
    ice = transport["iceParameters"]
    return RTCIceParameters(
        usernameFragment=ice["usernameFragment"], password=ice["password"], iceLite=True
    )


def ice_candidates(transport: Json) -> list[RTCIceCandidate]:
    # aiortc's ICE agent speaks UDP only.
    return [
        RTCIceCandidate(
            component=1,
            foundation=c["foundation"],
            ip=c.get("address") or c.get("ip"),
            port=c["port"],
            priority=c["priority"],
            protocol="udp",
            type=c["type"],
        )
        for c in transport["iceCandidates"]
        if c["protocol"] == "udp"
    ]


def remote_dtls(transport: Json, role: str) -> RTCDtlsParameters:
    fps = transport["dtlsParameters"]["fingerprints"]
    return RTCDtlsParameters(
        fingerprints=[RTCDtlsFingerprint(algorithm=f["algorithm"], value=f["value"]) for f in fps],
        role=role,
    )


def codec_from_json(c: Json) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType=c["mimeType"],
        clockRate=c["clockRate"],
        channels=c.get("channels"),
        payloadType=c["payloadType"],
        rtcpFeedback=[
            RTCRtcpFeedback(type=fb["type"], parameter=fb.get("parameter") or None)
            for fb in c.get("rtcpFeedback", [])
        ],
        parameters=dict(c.get("parameters", {})),
    )


def header_extensions_from_json(exts: list[Json]) -> list[RTCRtpHeaderExtensionParameters]:
    return [
        RTCRtpHeaderExtensionParameters(id=h["id"], uri=h["uri"])
        for h in exts
        if h["uri"] in AIORTC_HEADER_EXTENSIONS
    ]
