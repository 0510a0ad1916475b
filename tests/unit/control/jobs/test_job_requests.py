"""The job kinds' request models (one per kind, the REST body): validation, manager body."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mediaplane.control.jobs.egress import EgressRequest
from mediaplane.control.jobs.injections import InjectionRequest
from mediaplane.media.models import CompositeRequest


def test_egress_request_builds_the_managers_composite_request() -> None:
    file = EgressRequest.model_validate({"format": "webm", "videoKbps": 800, "audioOnly": True})
    body = file.job_body("egress/r/room-1")
    assert body == {"kind": "composite", "width": 1280, "height": 720, "fps": 30,
                    "videoKbps": 800, "audioOnly": True, "filePath": "egress/r/room-1",
                    "format": "webm"}  # fmt: skip
    hls = EgressRequest.model_validate({"output": "hls", "hls_window": 5}).job_body("n")
    assert hls["hlsPath"] == "n" and hls["hlsWindow"] == 5 and "filePath" not in hls
    rtmp = EgressRequest.model_validate({"output": "rtmp", "rtmpUrl": "rtmp://h/live/key"})
    assert rtmp.job_body("n")["rtmpUrl"] == "rtmp://h/live/key"
    for req in (file, rtmp):
        CompositeRequest.model_validate(req.job_body("egress/r/x"))  # the manager accepts it


@pytest.mark.parametrize(
    "body",
    [
        {"output": "rtmp"},
        {"output": "rtmp", "rtmpUrl": "http://example.com/x"},
        {"output": "file", "rtmpUrl": "rtmp://127.0.0.1/x"},
        {"source": "participant"},
        {"source": "participant", "identity": "not a name!"},
        {"width": 7},
        {"format": "avi"},
        {"output": "hls", "hlsWindow": 2},
        {"output": "file", "hlsWindow": 5},
        {"unknown": 1},
    ],
)
def test_egress_request_refusals(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EgressRequest.model_validate(body)


@pytest.mark.parametrize(
    "body",
    [
        {"source": ""},
        {"source": "media/a.mp4", "audio": False, "video": False},
        {"source": "media/a.mp4", "name": "bad\nname"},
        {"source": "media/a.mp4", "extra": True},
    ],
)
def test_injection_request_refusals(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        InjectionRequest.model_validate(body)


def test_injection_request_defaults() -> None:
    req = InjectionRequest.model_validate({"source": "media/a.mp4"})
    assert (req.audio, req.video, req.loop, req.name) == (True, True, False, None)
