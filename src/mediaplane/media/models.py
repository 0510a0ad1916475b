"""The media manager's typed requests, worker config and job resource.

They cross a process, so they live in `mediaplane.wire.media`; this module keeps
the names other packages import from here (the control plane's egress and
injections, the tests).
"""

from __future__ import annotations

from mediaplane.wire.media import (
    TERMINAL,
    AnyJobRequest,
    AnyWorkerConfig,
    CompositeInput,
    CompositeRequest,
    Endpoint,
    HlsWindow,
    InjectRequest,
    Job,
    JobKind,
    JobRequest,
    JobState,
    JobStats,
    MimeType,
    RecordRequest,
    RtmpUrl,
    RtpStream,
    RtpTarget,
    SourceUrl,
    StreamRequest,
    Strict,
    TranscodeRequest,
    Transition,
    WorkerConfig,
    check_hls_window,
    check_rtmp_url,
    check_source_url,
    check_url,
)

__all__ = [
    "TERMINAL",
    "AnyJobRequest",
    "AnyWorkerConfig",
    "CompositeInput",
    "CompositeRequest",
    "Endpoint",
    "HlsWindow",
    "InjectRequest",
    "Job",
    "JobKind",
    "JobRequest",
    "JobState",
    "JobStats",
    "MimeType",
    "RecordRequest",
    "RtmpUrl",
    "RtpStream",
    "RtpTarget",
    "SourceUrl",
    "StreamRequest",
    "Strict",
    "TranscodeRequest",
    "Transition",
    "WorkerConfig",
    "check_hls_window",
    "check_rtmp_url",
    "check_source_url",
    "check_url",
]
