"""Inject: a file or a URL played as RTP into an SFU's plain transports.

    uridecodebin (file, http(s) file or HLS, rtmp(s), rtsp(s))
        -> audio: queue -> audioconvert -> audioresample -> 48 kHz stereo -> opusenc
                  -> rtpopuspay (pt, ssrc) -> udpsink (sync: real time)
        -> video: queue -> videoconvert -> vp8enc (key frame each second)
                  -> rtpvp8pay (pt, ssrc) -> udpsink
        -> anything else (or a kind without a target): fakesink

Loop: once the pipeline has prerolled, a flushing *segment* seek to 0; each
SEGMENT_DONE then seeks to 0 again without flushing, so running time (and
with it the RTP timestamps) keeps growing across loops and receivers see one
continuous stream. A source that cannot seek (a live RTMP/RTSP stream) plays
once. Every restart emits `{"event": "loop", "count": n}`.

Timeouts: network sources get connect/read timeouts (souphttpsrc, rtspsrc,
rtmp sources), and a watchdog fails the job when no decoded data arrived for
`source_timeout_s` (an unreachable host, a server that never answers, a live
stream that stops), so a job never hangs.

Stop: nothing has to be finished (no file), so a stop ends the pipeline at once.
"""

from __future__ import annotations

import time

from mediaplane.media.worker.context import JobContext
from mediaplane.media.worker.events import emit
from mediaplane.media.worker.gst import GLib, Gst, caps, make
from mediaplane.media.worker.kind import Kind
from mediaplane.media.worker.outbound import BYPASSING_ELEMENTS, REMOTE_SOURCE_FAILED
from mediaplane.wire.media import (
    Eos,
    FirstPacket,
    InjectConfig,
    Looped,
    PipelineWarning,
    RtpTarget,
)

NETWORK_TIMEOUT_S = 8
WATCHDOG_MS = 500


class Inject(Kind[InjectConfig]):
    name = "inject"
    elements = ("uridecodebin", "audioconvert", "audioresample", "videoconvert",
                "capsfilter", "queue", "opusenc", "rtpopuspay", "vp8enc", "rtpvp8pay",
                "udpsink", "fakesink")  # fmt: skip

    def __init__(self, job: JobContext, config: InjectConfig) -> None:
        super().__init__(job, config)
        self.source = config.source
        self.loop = config.loop
        self.timeout_s = config.source_timeout_s
        self.outputs: dict[str, Gst.Element] = {}
        self.first_data: set[str] = set()
        self.started_at = time.monotonic()
        self.last_data: float | None = None
        self.looping = False  # the first segment seek succeeded
        self.loops = 0
        self.fakesinks = 0
        self.refusals: list[str] = []  # what this kind refused (told as it is)

    # building -------------------------------------------------------------------------
    def build(self) -> None:
        w, c = self.job, self.config
        uri = self.source if "://" in self.source else Gst.filename_to_uri(self.source)
        dec = make("uridecodebin", uri=uri)
        dec.connect("source-setup", self._source_setup)
        dec.connect("pad-added", self._on_pad)
        if "://" in self.source:
            dec.connect("deep-element-added", self._refuse_local_files)
        w.add(dec)
        if c.audio_target is not None:
            self.outputs["audio"] = self._audio(c.audio_target)
        if c.video_target is not None:
            self.outputs["video"] = self._video(c.video_target)
        GLib.timeout_add(WATCHDOG_MS, self._watchdog)

    def _audio(self, t: RtpTarget) -> Gst.Element:
        chain = [
            make("queue"), make("audioconvert"), make("audioresample"),
            make("capsfilter", caps=caps("audio/x-raw,rate=48000,channels=2")),
            make("opusenc", frame_size=20, bitrate=96000),
            make("rtpopuspay", pt=t.payload_type, ssrc=t.ssrc),
            make("udpsink", host=t.ip, port=t.port, sync=True),
        ]  # fmt: skip
        self.job.chain(*chain)
        return chain[0]

    def _video(self, t: RtpTarget) -> Gst.Element:
        chain = [
            make("queue"), make("videoconvert"),
            make("vp8enc", deadline=1, cpu_used=8, threads=2, end_usage=1,
                 target_bitrate=1_000_000, keyframe_max_dist=30),
            make("rtpvp8pay", pt=t.payload_type, ssrc=t.ssrc, picture_id_mode=2),
            make("udpsink", host=t.ip, port=t.port, sync=True),
        ]  # fmt: skip
        self.job.chain(*chain)
        return chain[0]

    def public_error(self, element: str, message: str) -> str | None:
        """A URL source: one sentence whatever failed (what the server answered, or
        that it was refused, would tell what listens behind the port)."""
        if any(own in message for own in self.refusals):
            return None  # the worker's own refusal, not what the remote said
        return REMOTE_SOURCE_FAILED if "://" in self.source else None

    def _source_setup(self, _dec: Gst.Element, source: Gst.Element) -> None:
        """Network sources give up instead of waiting forever."""
        factory = source.get_factory()
        name = factory.get_name() if factory is not None else ""
        if name == "rtspsrc":
            source.set_property("tcp-timeout", NETWORK_TIMEOUT_S * 1_000_000)  # microseconds
            source.set_property("latency", 200)  # ms of jitter buffer
        elif name in ("souphttpsrc", "rtmpsrc", "rtmp2src"):
            source.set_property("timeout", NETWORK_TIMEOUT_S)  # seconds

    def _refuse_local_files(self, _bin: Gst.Bin, _sub: Gst.Bin, element: Gst.Element) -> None:
        """A URL source must not open local files: an HLS playlist may list file://
        segments, which hlsdemux opens with filesrc; that would play any file the
        media manager can read (another room's recording) past the path confinement."""
        uri = ""
        if isinstance(element, Gst.URIHandler) and element.get_uri_type() == Gst.URIType.SRC:
            uri = element.get_uri() or ""
        factory = element.get_factory()
        name = factory.get_name() if factory is not None else ""
        if name in BYPASSING_ELEMENTS:  # would connect past the outbound guard
            why = f"{name} connects past the outbound guard: refused"
        elif name == "filesrc" or uri.lower().startswith("file:"):
            why = f"a URL source may not open a local file ({uri or name}): refused"
            if name == "filesrc":
                element.set_property("location", "/dev/null/refused")  # fails if it ever reads
        else:
            return
        self.refusals.append(why)
        err = GLib.Error.new_literal(
            Gst.ResourceError.quark(), why, int(Gst.ResourceError.NOT_AUTHORIZED)
        )
        # On the pipeline's bus: hlsdemux swallows its fragment sources' own errors.
        pipeline = self.job.pipeline
        pipeline.post_message(Gst.Message.new_error(pipeline, err, "local file from a URL source"))

    def _on_pad(self, _dec: Gst.Element, pad: Gst.Pad) -> None:
        structure = (pad.get_current_caps() or pad.query_caps(None)).get_structure(0)
        kind = structure.get_name().split("/")[0]
        target = self.outputs.get(kind)
        if target is None or target.get_static_pad("sink").is_linked():
            # Not wanted (no target, a second stream of a kind, subtitles): consumed in time.
            self.fakesinks += 1
            sink = make("fakesink", sync=True, async_=False)
            self.job.add(sink)
            sink.sync_state_with_parent()
            pad.link(sink.get_static_pad("sink"))
            return
        if pad.link(target.get_static_pad("sink")) != Gst.PadLinkReturn.OK:
            self.job.report(f"cannot link the source's {kind} to its encoder")
            return
        pad.add_probe(Gst.PadProbeType.BUFFER, self._data, kind)

    def _data(self, _pad: Gst.Pad, _info: Gst.PadProbeInfo, kind: str) -> Gst.PadProbeReturn:
        self.last_data = time.monotonic()
        if kind not in self.first_data:
            self.first_data.add(kind)
            emit(FirstPacket(stream=kind, at=time.time()))
        return Gst.PadProbeReturn.OK

    # running --------------------------------------------------------------------------
    def on_message(self, msg: Gst.Message) -> bool:
        if msg.type == Gst.MessageType.ASYNC_DONE and self.loop and not self.looping:
            if msg.src is self.job.pipeline:
                self.looping = self.job.pipeline.seek(
                    1.0, Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.SEGMENT,
                    Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1,
                )  # fmt: skip
                if not self.looping:
                    emit(PipelineWarning(message="the source cannot seek: it plays once"))
            return False
        if msg.type == Gst.MessageType.ERROR:
            # Network sources often say only "Internal data stream error": add why it stopped.
            err, debug = msg.parse_error()
            detail = (debug or "").strip().splitlines()[-1:] or [""]
            text = f"{msg.src.get_name()}: {err.message}"
            if detail[0] and "reason" in detail[0]:
                text += f" ({detail[0].strip()})"
            self.job.fail(f"cannot play the source: {text}", debug or "", msg.src.get_name())
            return True
        if msg.type == Gst.MessageType.SEGMENT_DONE:
            self.loops += 1
            ok = self.job.pipeline.seek(
                1.0, Gst.Format.TIME, Gst.SeekFlags.SEGMENT,
                Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1,
            )  # fmt: skip
            if ok:
                emit(Looped(count=self.loops))
            else:
                emit(PipelineWarning(message="seeking back to the start failed: ending"))
                self.job.pipeline.send_event(Gst.Event.new_eos())
            return True
        return False

    def _watchdog(self) -> bool:
        if self.job.stopping:
            return False
        now = time.monotonic()
        if self.last_data is None:
            if now - self.started_at > self.timeout_s:
                self.job.fail(f"no media from the source within {self.timeout_s:.0f} s")
                return False
        elif now - self.last_data > self.timeout_s:
            self.job.fail(f"the source sent no media for {self.timeout_s:.0f} s")
            return False
        return True

    def stop(self) -> None:
        # Nothing to finish (no file): a stopped injection ends at once, cleanly.
        emit(Eos())
        self.job.loop.quit()

    def position_s(self) -> float:
        """Time played so far (grows across loops, unlike the pipeline's position)."""
        pipeline = self.job.pipeline
        clock = pipeline.get_clock()
        if clock is None or pipeline.get_state(0)[1] != Gst.State.PLAYING:
            return 0.0
        played_ns = int(clock.get_time()) - int(pipeline.get_base_time())
        return max(0, played_ns) / float(Gst.SECOND)
