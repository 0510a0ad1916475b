"""What crosses the media manager's processes: job requests, the worker's config,
its events and commands, and the job resource.

Channels (docs/media-manager.md):
- control plane -> manager (REST): a `JobRequest` (one model per kind, discriminated
  by `kind`), answered with a `Job`; `CompositeInput` for a composite's new track.
- manager -> worker: a `WorkerConfig` (a JSON file named on its command line), then
  `WorkerCommand` lines on its stdin (discriminated by `cmd`).
- worker -> manager: `WorkerEvent` lines on its stdout (discriminated by `event`).

A client request is validated here into a typed request; the manager turns it
into a WorkerConfig (absolute, confined paths; allocated nothing from client
strings) that the worker builds a pipeline from. No client string ever
becomes part of a pipeline description. Field names: requests accept camelCase
(their aliases) or snake_case; events and commands are snake_case.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from mediaplane.wire.ids import NAME_PATTERN, Json

JobKind = Literal["record", "stream", "inject", "transcode", "composite"]
JobState = Literal["pending", "starting", "running", "stopping", "completed", "failed"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed"})

MimeType = Literal["audio/opus", "video/VP8", "video/VP9", "video/H264"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RtpStream(Strict):
    """One incoming RTP stream, as the SFU consumer's rtpParameters describe it."""

    mime_type: MimeType = Field(alias="mimeType")
    payload_type: int = Field(alias="payloadType", ge=0, le=127)
    clock_rate: int = Field(alias="clockRate", ge=8000, le=192000)
    channels: int | None = Field(default=None, ge=1, le=8)
    ssrc: int | None = Field(default=None, ge=0, le=2**32 - 1)

    @property
    def kind(self) -> Literal["audio", "video"]:
        return "audio" if self.mime_type.startswith("audio/") else "video"

    @property
    def encoding_name(self) -> str:
        return self.mime_type.split("/", 1)[1].upper()


class RecordRequest(Strict):
    kind: Literal["record"] = "record"
    file_path: str = Field(alias="filePath", description="relative to the recordings root")
    audio: RtpStream | None = None
    video: RtpStream | None = None

    @model_validator(mode="after")
    def _streams(self) -> RecordRequest:
        if self.audio is None and self.video is None:
            raise ValueError("a recording needs audio, video or both")
        if self.audio is not None and self.audio.kind != "audio":
            raise ValueError("audio must be an audio codec")
        if self.video is not None and self.video.kind != "video":
            raise ValueError("video must be a video codec")
        return self


def check_url(v: str, field: str, schemes: tuple[str, ...]) -> str:
    """A URL GStreamer may open: one of `schemes`, a host, a valid port, nothing odd."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in v):
        raise ValueError(f"{field} must not contain spaces or control characters")
    try:
        parts = urlsplit(v)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"{field} is not a valid URL: {e}") from None
    if parts.scheme.lower() not in schemes:
        raise ValueError(
            f"{field} scheme {parts.scheme or '(none)'!r} is not allowed; use "
            + " or ".join(f"{s}://" for s in schemes)
        )
    if not parts.hostname:
        raise ValueError(f"{field} must name a host")
    if port == 0:
        raise ValueError(f"{field} port must be 1-65535")
    return v


def check_rtmp_url(v: str) -> str:
    return check_url(v, "rtmpUrl", ("rtmp", "rtmps"))


RtmpUrl = Annotated[str, Field(max_length=1024), AfterValidator(check_rtmp_url)]


def check_hls_window(v: int) -> int:
    if 0 < v < 3:
        raise ValueError("hlsWindow is 0 (every segment) or at least 3 (RFC 8216 6.3.3)")
    return v


HlsWindow = Annotated[
    int,
    Field(
        ge=0,
        le=10000,
        alias="hlsWindow",
        description="HLS: 0 keeps every segment in the playlist (a recording of the stream); "
        "N >= 3 is a live window: the playlist lists the last N segments; N + 1 more stay on "
        "disk for players behind (RFC 8216 6.2.2), older ones are deleted",
    ),
    AfterValidator(check_hls_window),
]


class StreamRequest(Strict):
    kind: Literal["stream"] = "stream"
    audio: RtpStream | None = None
    video: RtpStream | None = None
    rtmp_url: RtmpUrl | None = Field(default=None, alias="rtmpUrl")
    hls_path: str | None = Field(
        default=None, alias="hlsPath", description="a folder under the root"
    )
    hls_window: HlsWindow = 0

    @model_validator(mode="after")
    def _target(self) -> StreamRequest:
        if (self.rtmp_url is None) == (self.hls_path is None):
            raise ValueError("give exactly one of rtmpUrl or hlsPath")
        if self.hls_window and self.hls_path is None:
            raise ValueError("hlsWindow is for HLS output only")
        if self.audio is None and self.video is None:
            raise ValueError("a stream needs audio, video or both")
        if self.audio is not None and self.audio.kind != "audio":
            raise ValueError("audio must be an audio codec")
        if self.video is not None and self.video.kind != "video":
            raise ValueError("video must be a video codec")
        return self


class RtpTarget(Strict):
    """Where injected media goes: an SFU plain transport's address."""

    ip: str = Field(pattern=r"^[0-9.]{7,15}$")
    port: int = Field(ge=1, le=65535)
    payload_type: int = Field(alias="payloadType", ge=96, le=127)
    ssrc: int = Field(ge=1, le=2**32 - 1)


SOURCE_SCHEMES = ("http", "https", "rtmp", "rtmps", "rtsp", "rtsps")


def check_source_url(v: str) -> str:
    """An injection source: an HTTP(S) file or HLS playlist, an RTMP or an RTSP stream.

    Nothing else: file:// would bypass the media root, and other schemes
    would let a client make GStreamer open arbitrary sources.
    """
    return check_url(v, "sourceUrl", SOURCE_SCHEMES)


SourceUrl = Annotated[str, Field(max_length=2048), AfterValidator(check_source_url)]


class InjectRequest(Strict):
    """Play a file (under the media root) or a URL into RTP targets (an SFU's plain transports)."""

    kind: Literal["inject"] = "inject"
    source_path: str | None = Field(default=None, alias="sourcePath")
    source_url: SourceUrl | None = Field(
        default=None,
        alias="sourceUrl",
        description="http(s):// file or HLS playlist (.m3u8), rtmp(s)://, rtsp(s)://",
    )
    audio: RtpTarget | None = None
    video: RtpTarget | None = None
    loop: bool = Field(default=False, description="start again at the end (seekable sources)")

    @model_validator(mode="after")
    def _source(self) -> InjectRequest:
        if (self.source_path is None) == (self.source_url is None):
            raise ValueError("give exactly one of sourcePath or sourceUrl")
        if self.audio is None and self.video is None:
            raise ValueError("inject needs an audio or a video target")
        return self


class TranscodeRequest(Strict):
    kind: Literal["transcode"] = "transcode"
    source_path: str = Field(alias="sourcePath")
    file_path: str = Field(alias="filePath")
    format: Literal["ogg-opus", "webm-vp8-opus", "mp4-h264-aac"]


InputId = Annotated[str, Field(pattern=NAME_PATTERN)]


class CompositeInput(Strict):
    """One track of the composite: a participant's audio or video."""

    id: InputId
    participant: str = Field(max_length=128, description="tracks of one participant share it")
    name: str = Field(default="", max_length=64, description="drawn on the video tile")
    stream: RtpStream


class CompositeRequest(Strict):
    """A room's tracks mixed into one output: audio mixed, video in a grid."""

    kind: Literal["composite"] = "composite"
    file_path: str | None = Field(default=None, alias="filePath")
    format: Literal["mp4", "mkv", "webm"] = Field(
        default="mp4", description="file only: mp4 = H264+AAC, mkv = H264+Opus, webm = VP8+Opus"
    )
    rtmp_url: RtmpUrl | None = Field(default=None, alias="rtmpUrl")
    hls_path: str | None = Field(default=None, alias="hlsPath")
    hls_window: HlsWindow = 0
    width: int = Field(default=1280, ge=160, le=1920, multiple_of=2)
    height: int = Field(default=720, ge=120, le=1080, multiple_of=2)
    fps: int = Field(default=30, ge=5, le=60)
    video_kbps: int = Field(default=2500, alias="videoKbps", ge=100, le=20000)
    audio_only: bool = Field(default=False, alias="audioOnly")
    inputs: list[CompositeInput] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _target(self) -> CompositeRequest:
        if sum(x is not None for x in (self.file_path, self.rtmp_url, self.hls_path)) != 1:
            raise ValueError("give exactly one of filePath, rtmpUrl or hlsPath")
        if self.hls_window and self.hls_path is None:
            raise ValueError("hlsWindow is for HLS output only")
        if len({i.id for i in self.inputs}) != len(self.inputs):
            raise ValueError("input ids must be unique")
        return self


AnyJobRequest = RecordRequest | StreamRequest | InjectRequest | TranscodeRequest | CompositeRequest
JobRequest = Annotated[AnyJobRequest, Field(discriminator="kind")]
"""POST /jobs: one request model per kind, told apart by `kind`."""


# what the worker process receives: one config per kind, told apart by `kind` ------
class WorkerBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str
    listen_ip: str = "127.0.0.1"  # where RTP inputs bind
    # MEDIAPLANE_OUTBOUND_ALLOW: where the worker may connect besides public addresses
    outbound_allow: list[str] = []


class RecordConfig(WorkerBase):
    kind: Literal["record"] = "record"
    audio: RtpStream | None = None
    video: RtpStream | None = None
    output: str  # absolute temporary path (.part)
    container: Literal["ogg", "webm", "mkv"]


class StreamConfig(WorkerBase):
    kind: Literal["stream"] = "stream"
    audio: RtpStream | None = None
    video: RtpStream | None = None
    container: Literal["hls", "flv"]
    output: str | None = None  # HLS: the folder
    rtmp_url: str | None = None  # flv: where to
    hls_window: int = 0  # HLS: segments in the playlist (0: all)


class InjectConfig(WorkerBase):
    kind: Literal["inject"] = "inject"
    source: str  # absolute file path or URL
    audio_target: RtpTarget | None = None
    video_target: RtpTarget | None = None
    loop: bool = False
    source_timeout_s: float = 10.0  # no decoded data for this long fails the job


class TranscodeConfig(WorkerBase):
    kind: Literal["transcode"] = "transcode"
    source: str  # absolute file path
    output: str  # absolute temporary path (.part)
    format: Literal["ogg-opus", "webm-vp8-opus", "mp4-h264-aac"]


class CompositeConfig(WorkerBase):
    kind: Literal["composite"] = "composite"
    request: CompositeRequest
    container: Literal["mp4", "mkv", "webm", "flv", "hls"]
    output: str | None = None  # a file: the temporary path (.part); HLS: the folder
    rtmp_url: str | None = None  # flv: where to


AnyWorkerConfig = RecordConfig | StreamConfig | InjectConfig | TranscodeConfig | CompositeConfig
WorkerConfig = Annotated[AnyWorkerConfig, Field(discriminator="kind")]
"""The JSON file a worker is started with (`python -m mediaplane.media.worker <file>`)."""
WORKER_CONFIG: TypeAdapter[AnyWorkerConfig] = TypeAdapter(WorkerConfig)


# the worker's commands (stdin) and events (stdout), one JSON line each ----------
class Ports(BaseModel):
    """The UDP ports an RTP input's udpsrcs bound."""

    rtp: int
    rtcp: int


class AddInput(BaseModel):
    """A track joins a running composite."""

    cmd: Literal["add-input"] = "add-input"
    input: CompositeInput


class RemoveInput(BaseModel):
    """A track leaves a running composite."""

    cmd: Literal["remove-input"] = "remove-input"
    id: str


WorkerCommand = Annotated[AddInput | RemoveInput, Field(discriminator="cmd")]
WORKER_COMMAND: TypeAdapter[AddInput | RemoveInput] = TypeAdapter(WorkerCommand)


class Ready(BaseModel):
    """The pipeline plays (a composite: its output flows); `ports` per RTP input."""

    event: Literal["ready"] = "ready"
    ports: dict[str, Ports] = Field(default_factory=dict)
    pid: int = 0


class FirstPacket(BaseModel):
    """The first packet (or decoded data, or composite output) of a stream."""

    event: Literal["first-packet"] = "first-packet"
    stream: str
    at: float  # wall-clock time (time.time())


class Stats(BaseModel):
    """Each second, and once more at the end."""

    event: Literal["stats"] = "stats"
    packets_received: int = 0
    packets_lost: int = 0
    position_s: float = 0.0


class PipelineError(BaseModel):
    """The job fails with `message` (the worker then exits non-zero)."""

    event: Literal["error"] = "error"
    message: str
    debug: str = ""
    detail: str = ""  # the pipeline's own words when `message` is generic: for the log only


class PipelineWarning(BaseModel):
    event: Literal["warning"] = "warning"
    message: str


class Eos(BaseModel):
    """The pipeline finished (a stop, or the source ended)."""

    event: Literal["eos"] = "eos"


class Looped(BaseModel):
    """An injection with loop started its source again, for the `count`th time."""

    event: Literal["loop"] = "loop"
    count: int


class KeyframeWanted(BaseModel):
    """A video input's depayloader saw a loss: the SFU should be asked for a key frame."""

    event: Literal["keyframe-wanted"] = "keyframe-wanted"
    input: str


class InputAdded(BaseModel):
    """The reply to AddInput."""

    event: Literal["input-added"] = "input-added"
    input: str
    ports: Ports


class InputRemoved(BaseModel):
    """The reply to RemoveInput."""

    event: Literal["input-removed"] = "input-removed"
    input: str


class InputError(BaseModel):
    """The reply to a command that failed (`input` is "" when it could not be read)."""

    event: Literal["input-error"] = "input-error"
    input: str
    message: str


class ActiveSpeaker(BaseModel):
    """A composite's active speaker changed (None: nobody)."""

    event: Literal["active-speaker"] = "active-speaker"
    participant: str | None


InputReply = InputAdded | InputRemoved | InputError
AnyWorkerEvent = (
    Ready
    | FirstPacket
    | Stats
    | PipelineError
    | PipelineWarning
    | Eos
    | Looped
    | KeyframeWanted
    | InputAdded
    | InputRemoved
    | InputError
    | ActiveSpeaker
)
WorkerEvent = Annotated[AnyWorkerEvent, Field(discriminator="event")]
WORKER_EVENT: TypeAdapter[AnyWorkerEvent] = TypeAdapter(WorkerEvent)


# the job resource ---------------------------------------------------------------
class Transition(BaseModel):
    state: JobState
    at: float
    reason: str = ""


class Endpoint(BaseModel):
    ip: str
    port: int
    rtcp_port: int | None = Field(default=None, alias="rtcpPort")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class JobStats(BaseModel):
    bytes: int = 0
    duration_s: float = 0.0
    packets_received: int = 0
    packets_lost: int = 0
    last_packet_at: float | None = None
    stalled: bool = False
    loops: int = 0  # inject with loop: how many times the source started again


class Job(BaseModel):
    id: str
    kind: JobKind
    state: JobState = "pending"
    history: list[Transition] = Field(default_factory=list)
    request: Json
    output_path: str | None = None
    rtp: dict[str, Endpoint] = Field(default_factory=dict)
    stats: JobStats = Field(default_factory=JobStats)
    created_at: float = Field(default_factory=time.time)
    first_packet_at: float | None = None
    first_packet_by_stream: dict[str, float] = Field(default_factory=dict)
    time_to_first_packet_s: float | None = None
    ended_at: float | None = None
    error: str | None = None
    pid: int | None = None
    cost: float = 0.0
    active_speaker: str | None = None  # composite: the participant framed as speaking
    # Video input -> key frames its depayloader asked for after a loss (or before the
    # first one). The worker cannot send RTCP to the SFU: whoever connected the input
    # watches these counts and asks the SFU (consumer.requestKeyFrame).
    keyframe_requests: dict[str, int] = Field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL
