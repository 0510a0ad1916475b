"""A job request -> the worker's config and the job's output path, and its CPU cost.

The manager's only per-kind code: a new kind adds its `_<kind>` here (and its
worker side in worker/kinds/<kind>.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mediaplane.media.files import hls_folder, output_file
from mediaplane.media.paths import confine
from mediaplane.settings import Settings
from mediaplane.wire.media import (
    AnyJobRequest,
    AnyWorkerConfig,
    CompositeConfig,
    CompositeRequest,
    InjectConfig,
    InjectRequest,
    RecordConfig,
    RecordRequest,
    StreamConfig,
    StreamRequest,
    TranscodeConfig,
    TranscodeRequest,
)

TRANSCODE_SUFFIX = {"ogg-opus": ".ogg", "webm-vp8-opus": ".webm", "mp4-h264-aac": ".mp4"}


def job_cost(req: AnyJobRequest) -> float:
    """CPU cost units; the budget (MEDIAPLANE_MEDIA_CPU_BUDGET) is their sum's limit."""
    if isinstance(req, RecordRequest):
        return 1.0 + (2.0 if req.video else 0.0)  # no transcoding: depay + mux only
    if isinstance(req, StreamRequest):
        return 25.0 if req.video else 5.0  # decode + x264/AAC encode
    if isinstance(req, InjectRequest):
        return 15.0 if req.video else 3.0
    if isinstance(req, CompositeRequest):
        # decode per track + mix + one encode that grows with the pixel rate
        pixels = 0.0 if req.audio_only else req.width * req.height * req.fps / (1280 * 720 * 30)
        return 10.0 + 40.0 * pixels
    return 30.0  # transcode runs as fast as the CPU allows


def worker_config(
    req: AnyJobRequest, job_id: str, settings: Settings
) -> tuple[AnyWorkerConfig, Path | None]:
    """(what the worker builds its pipeline from, the final output path if any).

    Paths are resolved under the recordings root (refused if they escape it or exist).
    """
    ids: dict[str, Any] = {
        "job_id": job_id, "listen_ip": settings.media_rtp_ip,
        "outbound_allow": list(settings.outbound_allow),
    }  # fmt: skip
    root = settings.recordings_dir
    if isinstance(req, RecordRequest):
        return _record(ids, req, root)
    if isinstance(req, StreamRequest):
        return _stream(ids, req, root)
    if isinstance(req, CompositeRequest):
        return _composite(ids, req, root)
    if isinstance(req, InjectRequest):
        return _inject(ids, req, root, settings.media_inject_timeout_s), None
    return _transcode(ids, req, root)


def _record(ids: dict[str, Any], req: RecordRequest, root: Path) -> tuple[RecordConfig, Path]:
    container: Literal["ogg", "webm", "mkv"]
    if req.video is None:
        container = "ogg"
    elif req.video.encoding_name == "H264":
        container = "mkv"
    else:
        container = "webm"
    final = output_file(root, req.file_path, f".{container}")
    config = RecordConfig(
        **ids, audio=req.audio, video=req.video, output=f"{final}.part", container=container
    )
    return config, final


def _stream(
    ids: dict[str, Any], req: StreamRequest, root: Path
) -> tuple[StreamConfig, Path | None]:
    streams = {"audio": req.audio, "video": req.video}
    if req.hls_path is None:
        return StreamConfig(**ids, **streams, container="flv", rtmp_url=req.rtmp_url), None
    final = hls_folder(root, req.hls_path)
    config = StreamConfig(
        **ids, **streams, container="hls", output=str(final), hls_window=req.hls_window
    )
    return config, final


def _composite(
    ids: dict[str, Any], req: CompositeRequest, root: Path
) -> tuple[CompositeConfig, Path | None]:
    if req.hls_path is not None:
        final = hls_folder(root, req.hls_path)
        return CompositeConfig(**ids, request=req, container="hls", output=str(final)), final
    if req.rtmp_url is not None:
        return CompositeConfig(**ids, request=req, container="flv", rtmp_url=req.rtmp_url), None
    final = output_file(root, req.file_path or "", f".{req.format}")
    config = CompositeConfig(**ids, request=req, container=req.format, output=f"{final}.part")
    return config, final


def _inject(ids: dict[str, Any], req: InjectRequest, root: Path, timeout_s: float) -> InjectConfig:
    source = (
        str(req.source_url)
        if req.source_url
        else str(confine(root, req.source_path or "", must_exist=True))
    )
    return InjectConfig(
        **ids, source=source, audio_target=req.audio, video_target=req.video, loop=req.loop,
        source_timeout_s=timeout_s,
    )  # fmt: skip


def _transcode(
    ids: dict[str, Any], req: TranscodeRequest, root: Path
) -> tuple[TranscodeConfig, Path]:
    source = str(confine(root, req.source_path, must_exist=True))
    final = output_file(root, req.file_path, TRANSCODE_SUFFIX[req.format])
    return TranscodeConfig(**ids, source=source, output=f"{final}.part", format=req.format), final
