"""The kind table: every job kind has one Kind, and each builds its pipeline from a config
(built, never played: no process, no socket)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import get_args

import pytest

from mediaplane.media.worker.context import JobContext
from mediaplane.media.worker.kind import Kind
from mediaplane.media.worker.kinds import ELEMENTS_BY_KIND, KINDS
from mediaplane.wire.media import (
    CompositeInput,
    CompositeRequest,
    JobKind,
    RtpStream,
    RtpTarget,
    WorkerConfig,
)

OPUS = RtpStream(mimeType="audio/opus", payloadType=100, clockRate=48000, channels=2)
VP8 = RtpStream(mimeType="video/VP8", payloadType=101, clockRate=90000)


def configs(tmp: Path) -> dict[str, WorkerConfig]:
    out = str(tmp / "out.part")
    target = RtpTarget(ip="127.0.0.1", port=5000, payloadType=100, ssrc=1)
    composite = CompositeRequest(
        filePath="c.mp4",
        inputs=[
            CompositeInput(id="a", participant="alice", stream=OPUS),
            CompositeInput(id="v", participant="alice", stream=VP8),
        ],
    )
    base = {"job_id": "0123456789abcdef"}
    return {
        "record": WorkerConfig(**base, kind="record", audio=OPUS, video=VP8, output=out,
                               container="webm"),
        "stream": WorkerConfig(**base, kind="stream", audio=OPUS, video=VP8, output=str(tmp),
                               container="hls"),
        "inject": WorkerConfig(**base, kind="inject", source=str(tmp / "in.mp4"),
                               audio_target=target),
        "transcode": WorkerConfig(**base, kind="transcode", source=str(tmp / "in.ogg"),
                                  output=out, transcode_format="webm-vp8-opus"),
        "composite": WorkerConfig(**base, kind="composite", output=out, container="mp4",
                                  composite=composite),
    }  # fmt: skip


def test_every_job_kind_has_one_kind() -> None:
    assert set(KINDS) == set(get_args(JobKind))
    assert set(ELEMENTS_BY_KIND) == set(KINDS)
    for name, kind in KINDS.items():
        assert issubclass(kind, Kind) and not inspect.isabstract(kind)
        assert kind.name == name
        assert kind.elements


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_kind_builds_only_elements_it_lists(name: JobKind, tmp_path: Path) -> None:
    job = JobContext(configs(tmp_path)[name])
    kind = KINDS[name](job)
    kind.build()
    made = {e.get_factory().get_name() for e in job.pipeline.iterate_elements()}
    assert made, "the pipeline has elements"
    assert made - set(kind.elements) == set()
    assert kind.position_s() == 0.0  # not playing
    assert job.rtp.counts() == (0, 0)


def test_rtp_inputs_bind_one_session_each(tmp_path: Path) -> None:
    job = JobContext(configs(tmp_path)["record"])
    KINDS["record"](job).build()
    assert job.rtp.sessions == ["audio", "video"]
    assert set(job.rtp.ports()) == {"audio", "video"}


def test_a_kind_without_commands_refuses_them(tmp_path: Path) -> None:
    from mediaplane.wire.media import RemoveInput

    kind = KINDS["record"](JobContext(configs(tmp_path)["record"]))
    with pytest.raises(ValueError, match="takes no remove-input"):
        kind.command(RemoveInput(id="x"))
