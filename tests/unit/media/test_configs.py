"""A job request becomes its kind's worker config, with its output confined under the root."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter

from mediaplane.media.configs import job_cost, worker_config
from mediaplane.media.errors import BadRequest, Conflict
from mediaplane.settings import Settings
from mediaplane.wire.media import (
    AnyJobRequest,
    CompositeConfig,
    InjectConfig,
    JobRequest,
    RecordConfig,
    StreamConfig,
    TranscodeConfig,
)

OPUS = {"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}
VP8 = {"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}
H264 = {"mimeType": "video/H264", "payloadType": 102, "clockRate": 90000}
TARGET = {"ip": "127.0.0.1", "port": 5000, "payloadType": 100, "ssrc": 1}
REQUEST: TypeAdapter[AnyJobRequest] = TypeAdapter(JobRequest)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "in.mp4").write_bytes(b"x")
    return Settings(env="test", recordings_root=tmp_path / "rec", media_rtp_ip="127.0.0.2")


def config_of(body: dict[str, object], settings: Settings) -> tuple[object, Path | None]:
    return worker_config(REQUEST.validate_python(body), "0123456789abcdef", settings)


@pytest.mark.parametrize(
    ("streams", "container"),
    [({"audio": OPUS}, "ogg"), ({"audio": OPUS, "video": VP8}, "webm"), ({"video": H264}, "mkv")],
)
def test_a_recording_picks_its_container_and_writes_a_part_file(
    settings: Settings, streams: dict[str, object], container: str
) -> None:
    config, final = config_of({"kind": "record", "filePath": "room/a", **streams}, settings)
    assert isinstance(config, RecordConfig) and config.container == container
    assert final == settings.recordings_dir.resolve() / "room" / f"a.{container}"
    assert config.output == f"{final}.part"
    assert config.listen_ip == "127.0.0.2" and config.job_id == "0123456789abcdef"


def test_a_stream_goes_to_rtmp_or_an_hls_folder(settings: Settings) -> None:
    body = {"kind": "stream", "audio": OPUS, "rtmpUrl": "rtmp://h/live/k"}
    config, final = config_of(body, settings)
    assert isinstance(config, StreamConfig) and config.container == "flv" and final is None
    assert config.rtmp_url == "rtmp://h/live/k"
    config, final = config_of({"kind": "stream", "audio": OPUS, "hlsPath": "live",
                               "hlsWindow": 4}, settings)  # fmt: skip
    assert isinstance(config, StreamConfig) and config.container == "hls"
    assert final is not None and final.is_dir() and config.output == str(final)
    assert config.hls_window == 4


def test_a_composite_file_an_injection_and_a_transcode(settings: Settings) -> None:
    config, final = config_of({"kind": "composite", "filePath": "c", "format": "mkv"}, settings)
    assert isinstance(config, CompositeConfig) and config.container == "mkv"
    assert final is not None and final.name == "c.mkv" and config.output == f"{final}.part"
    body = {"kind": "inject", "sourcePath": "in.mp4", "video": TARGET, "loop": True}
    config, final = config_of(body, settings)
    assert isinstance(config, InjectConfig) and final is None and config.loop
    assert config.source == str(settings.recordings_dir.resolve() / "in.mp4")
    assert config.source_timeout_s == settings.media_inject_timeout_s
    body = {"kind": "transcode", "sourcePath": "in.mp4", "filePath": "t",
            "format": "ogg-opus"}  # fmt: skip
    config, final = config_of(body, settings)
    assert isinstance(config, TranscodeConfig) and config.format == "ogg-opus"
    assert final is not None and final.name == "t.ogg"


def test_outputs_never_escape_the_root_or_overwrite(settings: Settings) -> None:
    with pytest.raises(BadRequest):
        config_of({"kind": "record", "filePath": "../x", "audio": OPUS}, settings)
    with pytest.raises(BadRequest):
        config_of({"kind": "transcode", "sourcePath": "none.mp4", "filePath": "t",
                   "format": "ogg-opus"}, settings)  # fmt: skip
    with pytest.raises(Conflict):
        config_of({"kind": "transcode", "sourcePath": "in.mp4", "filePath": "in.mp4",
                   "format": "mp4-h264-aac"}, settings)  # fmt: skip


@pytest.mark.parametrize(
    ("body", "cost"),
    [
        ({"kind": "record", "filePath": "a", "audio": OPUS}, 1.0),
        ({"kind": "record", "filePath": "a", "audio": OPUS, "video": VP8}, 3.0),
        ({"kind": "stream", "audio": OPUS, "rtmpUrl": "rtmp://h/k"}, 5.0),
        ({"kind": "stream", "video": VP8, "rtmpUrl": "rtmp://h/k"}, 25.0),
        ({"kind": "inject", "sourcePath": "a", "audio": TARGET}, 3.0),
        ({"kind": "inject", "sourcePath": "a", "video": TARGET}, 15.0),
        ({"kind": "transcode", "sourcePath": "a", "filePath": "b", "format": "ogg-opus"}, 30.0),
        ({"kind": "composite", "filePath": "c"}, 50.0),
        ({"kind": "composite", "filePath": "c", "audioOnly": True}, 10.0),
    ],
)
def test_costs_as_docs_say(body: dict[str, object], cost: float) -> None:
    assert job_cost(REQUEST.validate_python(body)) == pytest.approx(cost)
