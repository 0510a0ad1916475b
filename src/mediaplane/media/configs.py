"""A job request -> the worker's config and the job's output path, and its CPU cost.

The manager's only per-kind code: a new kind adds its `_<kind>` here (and its
worker side in worker/kinds/<kind>.py).
"""

from __future__ import annotations

from pathlib import Path

from mediaplane.media.files import hls_folder, output_file
from mediaplane.media.paths import confine
from mediaplane.settings import Settings
from mediaplane.wire.media import (
    AnyJobRequest,
    CompositeRequest,
    InjectRequest,
    RecordRequest,
    StreamRequest,
    TranscodeRequest,
    WorkerConfig,
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
) -> tuple[WorkerConfig, Path | None]:
    """(what the worker builds its pipeline from, the final output path if any).

    Paths are resolved under the recordings root (refused if they escape it or exist).
    """
    config = WorkerConfig(job_id=job_id, kind=req.kind, listen_ip=settings.media_rtp_ip)
    root = settings.recordings_dir
    if isinstance(req, RecordRequest):
        return config, _record(config, req, root)
    if isinstance(req, StreamRequest):
        return config, _stream(config, req, root)
    if isinstance(req, CompositeRequest):
        return config, _composite(config, req, root)
    if isinstance(req, InjectRequest):
        _inject(config, req, root, settings.media_inject_timeout_s)
        return config, None
    return config, _transcode(config, req, root)


def _record(config: WorkerConfig, req: RecordRequest, root: Path) -> Path:
    config.audio, config.video = req.audio, req.video
    if req.video is None:
        config.container, suffix = "ogg", ".ogg"
    elif req.video.encoding_name == "H264":
        config.container, suffix = "mkv", ".mkv"
    else:
        config.container, suffix = "webm", ".webm"
    final = output_file(root, req.file_path, suffix)
    config.output = str(final) + ".part"
    return final


def _stream(config: WorkerConfig, req: StreamRequest, root: Path) -> Path | None:
    config.audio, config.video = req.audio, req.video
    if req.hls_path is None:
        config.container, config.rtmp_url = "flv", req.rtmp_url
        return None
    final = hls_folder(root, req.hls_path)
    config.container, config.output = "hls", str(final)
    config.hls_window = req.hls_window
    return final


def _composite(config: WorkerConfig, req: CompositeRequest, root: Path) -> Path | None:
    config.composite = req
    if req.hls_path is not None:
        final = hls_folder(root, req.hls_path)
        config.container, config.output = "hls", str(final)
        return final
    if req.rtmp_url is not None:
        config.container, config.rtmp_url = "flv", req.rtmp_url
        return None
    final = output_file(root, req.file_path or "", f".{req.format}")
    config.container, config.output = req.format, str(final) + ".part"
    return final


def _inject(config: WorkerConfig, req: InjectRequest, root: Path, timeout_s: float) -> None:
    config.source = (
        str(req.source_url)
        if req.source_url
        else str(confine(root, req.source_path or "", must_exist=True))
    )
    config.audio_target, config.video_target, config.loop = req.audio, req.video, req.loop
    config.source_timeout_s = timeout_s


def _transcode(config: WorkerConfig, req: TranscodeRequest, root: Path) -> Path:
    config.source = str(confine(root, req.source_path, must_exist=True))
    final = output_file(root, req.file_path, TRANSCODE_SUFFIX[req.format])
    config.output, config.transcode_format = str(final) + ".part", req.format
    return final
