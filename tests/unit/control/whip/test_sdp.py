"""Unit tests of the WHIP/WHEP SDP module: any text is parsed or refused as BadSdp, and the
payload types given to a WHEP router survive mediasoup's RTX allocation."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediaplane.control.whip import sdp

LINES = st.sampled_from([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "m=video x UDP 1", "a=rtpmap:111 opus/48000/2", "a=rtpmap:x", "a=fmtp:99 apt=1",
    "a=ssrc:1", "a=ssrc:abc cname:x", "a=setup:bogus", "a=candidate:1 1 udp", "c=IN IP9 x",
    "a=extmap:x", "a=mid:0", "a=ice-ufrag:u", "a=fingerprint:sha-256", "a=group:BUNDLE 0",
])  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(LINES | st.text(max_size=30), max_size=12))
def test_any_text_parses_or_is_refused_as_bad_sdp(lines: list[str]) -> None:
    text = "\r\n".join(["v=0", *lines]) + "\r\n"
    with contextlib.suppress(sdp.BadSdp, sdp.UnsupportedMedia):
        sdp.check_offer(text)
    with contextlib.suppress(sdp.BadSdp):
        sdp.parse_fragment(text)


def _codec(kind: str, pt: int) -> dict[str, object]:
    mime = "audio/opus" if kind == "audio" else "video/VP8"
    return {"kind": kind, "mimeType": mime, "clockRate": 90000, "preferredPayloadType": pt}


def test_payload_types_survive_rtx_allocation() -> None:
    # A video codec at 100 would get its RTX at 101 if processed first: 101 goes first.
    kept = sdp._fit_payload_types([_codec("video", 100), _codec("video", 101)])
    assert [c["preferredPayloadType"] for c in kept] == [100]
    # Chrome's usual numbers all fit, in mediasoup's pool order.
    chrome = [_codec("audio", 111), _codec("video", 96), _codec("video", 98),
              _codec("video", 100), _codec("video", 108), _codec("video", 116)]  # fmt: skip
    kept = sdp._fit_payload_types(chrome)
    assert sorted(c["preferredPayloadType"] for c in kept) == [96, 98, 100, 108, 111, 116]
    rtx: list[int] = []
    pool = list(sdp.MEDIASOUP_DYNAMIC_PTS)
    for c in kept:  # replay mediasoup's allocation
        pt = c["preferredPayloadType"]
        assert pt not in rtx
        if pt in pool:
            pool.remove(pt)
        if c["kind"] == "video":
            rtx.append(pool.pop(0))


@pytest.mark.parametrize("text", ["", "v=0\r\n", "hello"])
def test_empty_or_foreign_offers_are_refused(text: str) -> None:
    with pytest.raises(sdp.BadSdp):
        sdp.check_offer(text)


def test_h264_codec_json_has_numbers_where_mediasoup_compares_them() -> None:
    """OBS's H.264: mediasoup matches packetization-mode by value (1, not '1')."""
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from mediaplane.peer.ortc import codec_to_json

    codec = RTCRtpCodecParameters(
        mimeType="video/H264", clockRate=90000, payloadType=102,
        parameters={"packetization-mode": "1", "level-asymmetry-allowed": "1",
                    "profile-level-id": "640032"},
    )  # fmt: skip
    params = codec_to_json(codec)["parameters"]
    assert params == {
        "packetization-mode": 1, "level-asymmetry-allowed": 1, "profile-level-id": "640032",
    }  # fmt: skip
