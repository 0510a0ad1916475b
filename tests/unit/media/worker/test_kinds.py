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
    WORKER_CONFIG,
    AnyWorkerConfig,
    CompositeConfig,
    CompositeInput,
    CompositeRequest,
    InjectConfig,
    JobKind,
    RecordConfig,
    RemoveInput,
    RtpStream,
    RtpTarget,
    StreamConfig,
    TranscodeConfig,
)

OPUS = RtpStream(mimeType="audio/opus", payloadType=100, clockRate=48000, channels=2)
VP8 = RtpStream(mimeType="video/VP8", payloadType=101, clockRate=90000)


def configs(tmp: Path) -> dict[str, AnyWorkerConfig]:
    out = str(tmp / "out.part")
    target = RtpTarget(ip="127.0.0.1", port=5000, payloadType=100, ssrc=1)
    composite = CompositeRequest(
        filePath="c.mp4",
        inputs=[
            CompositeInput(id="a", participant="alice", stream=OPUS),
            CompositeInput(id="v", participant="alice", stream=VP8),
        ],
    )
    ids = {"job_id": "0123456789abcdef"}
    return {
        "record": RecordConfig(**ids, audio=OPUS, video=VP8, output=out, container="webm"),
        "stream": StreamConfig(**ids, audio=OPUS, video=VP8, output=str(tmp), container="hls"),
        "inject": InjectConfig(**ids, source=str(tmp / "in.mp4"), audio_target=target),
        "transcode": TranscodeConfig(**ids, source=str(tmp / "in.ogg"), output=out,
                                     format="webm-vp8-opus"),
        "composite": CompositeConfig(**ids, output=out, container="mp4", request=composite),
    }  # fmt: skip


def test_configs_round_trip_as_the_worker_reads_them(tmp_path: Path) -> None:
    for name, config in configs(tmp_path).items():
        read = WORKER_CONFIG.validate_json(config.model_dump_json())
        assert read == config and read.kind == name


def test_every_job_kind_has_one_kind() -> None:
    assert set(KINDS) == set(get_args(JobKind))
    assert set(ELEMENTS_BY_KIND) == set(KINDS)
    for name, kind in KINDS.items():
        assert issubclass(kind, Kind) and not inspect.isabstract(kind)
        assert kind.name == name
        assert kind.elements


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_kind_builds_only_elements_it_lists(name: JobKind, tmp_path: Path) -> None:
    config = configs(tmp_path)[name]
    job = JobContext(config)
    kind = KINDS[name](job, config)
    kind.build()
    made = {e.get_factory().get_name() for e in job.pipeline.iterate_elements()}
    assert made, "the pipeline has elements"
    assert made - set(kind.elements) == set()
    assert kind.position_s() == 0.0  # not playing
    assert job.rtp.counts() == (0, 0)


def test_rtp_inputs_bind_one_session_each(tmp_path: Path) -> None:
    config = configs(tmp_path)["record"]
    job = JobContext(config)
    KINDS["record"](job, config).build()
    assert job.rtp.sessions == ["audio", "video"]
    assert set(job.rtp.ports()) == {"audio", "video"}


def test_a_kind_without_commands_refuses_them(tmp_path: Path) -> None:
    config = configs(tmp_path)["record"]
    kind = KINDS["record"](JobContext(config), config)
    with pytest.raises(ValueError, match="takes no remove-input"):
        kind.command(RemoveInput(id="x"))
