"""SFU plumbing's pure parts: a consumer's RTP as the manager's stream, key-frame relaying."""

from __future__ import annotations

from mediaplane.control.jobs.plumbing import KeyFrameRelay, consumer_stream
from mediaplane.media.models import Job, RtpStream


def test_consumer_stream_is_a_valid_manager_stream() -> None:
    opus = {
        "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000,
                    "channels": 2, "parameters": {"useinbandfec": 1}}],
        "encodings": [{"ssrc": 1234}],
    }  # fmt: skip
    vp8 = {
        "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}],
        "encodings": [{"ssrc": 99, "rtx": {"ssrc": 100}}],
    }
    a, v = consumer_stream(opus), consumer_stream(vp8)
    assert a == {"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000,
                 "ssrc": 1234, "channels": 2}  # fmt: skip
    assert v == {"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000, "ssrc": 99}
    assert RtpStream.model_validate(a).channels == 2
    assert RtpStream.model_validate(v).ssrc == 99


def _job(requests: dict[str, int]) -> Job:
    return Job(id="fedcba9876543210", kind="composite", request={}, keyframe_requests=requests)


def test_key_frames_are_relayed_once_per_new_request() -> None:
    relay = KeyFrameRelay()
    assert relay.due(_job({})) == []
    assert relay.due(_job({"p1": 1, "p2": 0})) == [("p1", 1)]
    assert relay.due(_job({"p1": 1, "p2": 0})) == []  # nothing moved
    assert relay.due(_job({"p1": 3, "p2": 1})) == [("p1", 3), ("p2", 1)]
    assert relay.due(_job({"p1": 2})) == []  # a count never goes back (a restarted input)
    assert relay.relayed == {"p1": 3, "p2": 1}
