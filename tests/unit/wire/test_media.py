"""The media manager's wire: job requests, worker events and commands round-trip as typed models."""

from __future__ import annotations

import json
from typing import get_args

import pytest
from pydantic import TypeAdapter, ValidationError

from mediaplane.wire.media import (
    WORKER_COMMAND,
    WORKER_EVENT,
    ActiveSpeaker,
    AddInput,
    AnyJobRequest,
    AnyWorkerEvent,
    CompositeInput,
    CompositeRequest,
    Eos,
    FirstPacket,
    InjectRequest,
    InputAdded,
    InputError,
    InputRemoved,
    JobKind,
    JobRequest,
    KeyframeWanted,
    Looped,
    PipelineError,
    PipelineWarning,
    Ports,
    Ready,
    RecordRequest,
    RemoveInput,
    RtpStream,
    Stats,
    StreamRequest,
    TranscodeRequest,
)

OPUS = {"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}
VP8 = {"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}
JOB_REQUEST: TypeAdapter[AnyJobRequest] = TypeAdapter(JobRequest)

EVENTS: list[AnyWorkerEvent] = [
    Ready(ports={"audio": Ports(rtp=40000, rtcp=40001)}, pid=0),
    FirstPacket(stream="audio", at=1700000000.1),
    Stats(packets_received=250, packets_lost=1, position_s=5.0),
    PipelineError(message="udpsrc0: could not bind", debug="gstudpsrc.c"),
    PipelineWarning(message="the source cannot seek: it plays once"),
    Eos(),
    Looped(count=2),
    KeyframeWanted(input="cam"),
    InputAdded(input="cam", ports=Ports(rtp=40002, rtcp=40003)),
    InputRemoved(input="cam"),
    InputError(input="", message="input 'cam' exists"),
    ActiveSpeaker(participant="alice"),
    ActiveSpeaker(participant=None),
]


def test_every_event_type_is_covered_and_has_its_own_name() -> None:
    types = get_args(AnyWorkerEvent)
    assert {type(e) for e in EVENTS} == set(types)
    names = [t.model_fields["event"].default for t in types]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.event)
def test_events_round_trip_as_one_json_line(event: AnyWorkerEvent) -> None:
    line = event.model_dump_json()
    assert "\n" not in line
    assert json.loads(line)["event"] == event.event
    assert WORKER_EVENT.validate_json(line) == event


def test_event_lines_as_the_worker_docstring_shows_them() -> None:
    ready = WORKER_EVENT.validate_json(
        '{"event": "ready", "ports": {"audio": {"rtp": 40000, "rtcp": 40001}}}'
    )
    assert isinstance(ready, Ready) and ready.ports["audio"].rtcp == 40001 and ready.pid == 0
    stats = WORKER_EVENT.validate_json(
        '{"event": "stats", "packets_received": 250, "packets_lost": 0, "position_s": 5.0}'
    )
    assert stats == Stats(packets_received=250, packets_lost=0, position_s=5.0)
    assert WORKER_EVENT.validate_json('{"event": "eos"}') == Eos()
    assert WORKER_EVENT.validate_json('{"event": "loop", "count": 2}') == Looped(count=2)


@pytest.mark.parametrize(
    "line",
    [
        '{"event": "nonsense"}',
        '{"event": "first-packet", "stream": "audio"}',  # no time
        '{"event": "input-added", "input": "cam", "ports": {"rtp": 1}}',  # no rtcp port
        '{"no": "event"}',
        "not json",
    ],
)
def test_lines_that_are_no_event_are_refused(line: str) -> None:
    with pytest.raises(ValidationError):
        WORKER_EVENT.validate_json(line)


def test_commands_round_trip_with_camel_case_streams() -> None:
    spec = CompositeInput(id="cam", participant="alice", name="Alice", stream=RtpStream(**VP8))
    add = AddInput(input=spec)
    line = add.model_dump_json(by_alias=True)
    assert json.loads(line)["input"]["stream"]["mimeType"] == "video/VP8"
    assert WORKER_COMMAND.validate_json(line) == add
    remove = RemoveInput(id="cam")
    assert json.loads(remove.model_dump_json()) == {"cmd": "remove-input", "id": "cam"}
    assert WORKER_COMMAND.validate_json(remove.model_dump_json()) == remove


def test_unknown_and_malformed_commands_are_refused() -> None:
    with pytest.raises(ValidationError):
        WORKER_COMMAND.validate_python({"cmd": "explode"})
    with pytest.raises(ValidationError):
        WORKER_COMMAND.validate_python({"cmd": "add-input", "input": {"id": "../x"}})


@pytest.mark.parametrize(
    ("body", "model"),
    [
        ({"kind": "record", "filePath": "a/b.ogg", "audio": OPUS}, RecordRequest),
        ({"kind": "stream", "video": VP8, "rtmpUrl": "rtmp://h/live/k"}, StreamRequest),
        (
            {"kind": "inject", "sourceUrl": "https://h/a.mp4",
             "audio": {"ip": "127.0.0.1", "port": 5000, "payloadType": 100, "ssrc": 1}},
            InjectRequest,
        ),
        (
            {"kind": "transcode", "sourcePath": "a.ogg", "filePath": "b.mp4",
             "format": "mp4-h264-aac"},
            TranscodeRequest,
        ),
        ({"kind": "composite", "hlsPath": "live", "hlsWindow": 5}, CompositeRequest),
    ],
)  # fmt: skip
def test_job_requests_are_told_apart_by_kind_and_round_trip(
    body: dict[str, object], model: type[AnyJobRequest]
) -> None:
    req = JOB_REQUEST.validate_python(body)
    assert type(req) is model
    assert JOB_REQUEST.validate_json(req.model_dump_json(by_alias=True)) == req


def test_every_job_kind_has_a_request_model() -> None:
    kinds = {t.model_fields["kind"].default for t in get_args(AnyJobRequest)}
    assert kinds == set(get_args(JobKind))


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "record", "filePath": "a.ogg"},  # no stream
        {"kind": "record", "filePath": "a.ogg", "audio": VP8},  # video codec as audio
        {"kind": "stream", "audio": OPUS},  # no target
        {"kind": "stream", "audio": OPUS, "rtmpUrl": "rtmp://h/k", "hlsWindow": 5},
        {"kind": "inject", "sourcePath": "a.mp4"},  # no target
        {"kind": "composite", "filePath": "a.mp4", "rtmpUrl": "rtmp://h/k"},  # two targets
        {"kind": "composite", "hlsPath": "x", "hlsWindow": 2},  # RFC 8216: at least 3
        {"kind": "record", "filePath": "a.ogg", "audio": OPUS, "extra": 1},  # unknown field
        {"kind": "captions"},
    ],
)
def test_bad_job_requests_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        JOB_REQUEST.validate_python(body)


def test_composite_input_ids_use_the_shared_name_pattern() -> None:
    CompositeInput(id="a.b_c-1", participant="p", stream=RtpStream(**OPUS))
    for bad in ("", "a b", "a/b", "x" * 65):
        with pytest.raises(ValidationError):
            CompositeInput(id=bad, participant="p", stream=RtpStream(**OPUS))
