"""The room composite: every audio track mixed, every video track in a grid, one process.

    udpsrc (per track) -> rtpbin -> depay -> decode -> [name overlay] -> queue
        -> audiomixer / compositor -> encoders -> file, RTMP or HLS

A silent live audio bed and a black live video bed feed the mixers, so the
output runs at its own clock from the first second, with or without inputs.
Tracks come and go while it runs (the manager forwards `add-input` and
`remove-input` commands); the grid is laid out again on every change. Each
audio branch has a `level` element: the loudest participant (with
hysteresis) is the active speaker, whose tile gets a coloured frame, and an
`active-speaker` event goes to the manager.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mediaplane.media.worker import outputs, rtp_inputs
from mediaplane.media.worker.codecs import DECODE, DECODE_ELEMENTS
from mediaplane.media.worker.context import JobContext
from mediaplane.media.worker.events import emit
from mediaplane.media.worker.gst import GLib, Gst, caps, link, make
from mediaplane.media.worker.kind import Kind
from mediaplane.media.worker.outbound import REMOTE_TARGET_FAILED
from mediaplane.media.worker.outputs import OutputKind, encoded_output
from mediaplane.media.worker.rtp_inputs import RtpInput
from mediaplane.wire.media import (
    ActiveSpeaker,
    AddInput,
    CompositeConfig,
    CompositeInput,
    FirstPacket,
    InputAdded,
    InputRemoved,
    InputReply,
    Ports,
    Ready,
    RemoveInput,
)

MIX_LATENCY_NS = 300 * Gst.MSECOND  # covers the jitter buffer (200 ms) of late-added tracks
# The mixers run live on the clock: a track with no data yet is skipped at each
# deadline. Not `ignore-inactive-pads`: in GStreamer 1.22 a deadline that finds every
# pad without data (at start, before the bed's first buffer; or between two bed
# buffers) ends the mix with EOS, so the output stalled or lost its audio.
FRAME_PX = 6  # the active speaker's frame
SPEAKING_DB = -45.0  # a participant louder than this (RMS) may be the active speaker
SWITCH_DB = 6.0  # a new speaker must be this much louder than the current one
SPEAKER_POLL_MS = 300


@dataclass
class Track:
    spec: CompositeInput
    made: RtpInput
    mixer_pad: Gst.Pad
    aspect: float | None = None


@dataclass
class Speaker:
    levels: dict[str, float] = field(default_factory=dict)  # participant -> recent peak RMS dB
    current: str | None = None

    def choose(self) -> str | None:
        if not self.levels:
            return self.current
        loudest, db = max(self.levels.items(), key=lambda kv: kv[1])
        current_db = self.levels.get(self.current or "", -200.0)
        self.levels.clear()
        if db < SPEAKING_DB:
            return self.current
        if self.current is not None and current_db >= SPEAKING_DB and db - current_db < SWITCH_DB:
            return self.current
        return loudest


Rect = tuple[int, int, int, int]  # x, y, width, height


def tiles(aspects: list[float | None], width: int, height: int) -> list[Rect]:
    """Where each video goes: a grid of n cells in order, the last row centred, each
    video fitted into its cell (inside the speaker frame's margin) at its aspect ratio
    (None: not known yet, the whole cell)."""
    n = len(aspects)
    cols = math.ceil(math.sqrt(n)) if n else 1
    rows = math.ceil(n / cols) if n else 1
    cw, ch = width // cols, height // rows
    rects: list[Rect] = []
    for index, aspect in enumerate(aspects):
        row, col = divmod(index, cols)
        in_row = min(cols, n - row * cols)
        x0 = col * cw + (cols - in_row) * cw // 2
        y0 = row * ch
        iw, ih = cw - 2 * FRAME_PX, ch - 2 * FRAME_PX
        if aspect:
            if iw / ih > aspect:
                iw = int(ih * aspect)
            else:
                ih = int(iw / aspect)
        rects.append((x0 + (cw - iw) // 2, y0 + (ch - ih) // 2, iw, ih))
    return rects


def _place(pad: Gst.Pad, rect: Rect) -> None:
    x, y, w, h = rect
    pad.set_property("xpos", x)
    pad.set_property("ypos", y)
    pad.set_property("width", w)
    pad.set_property("height", h)
    pad.set_property("alpha", 1.0)


class Composite(Kind[CompositeConfig]):
    name = "composite"
    elements = (*rtp_inputs.ELEMENTS, *DECODE_ELEMENTS, *outputs.ELEMENTS, "compositor",
                "audiomixer", "textoverlay", "level", "audiotestsrc", "videotestsrc")  # fmt: skip

    def __init__(self, job: JobContext, config: CompositeConfig) -> None:
        super().__init__(job, config)
        self.request = config.request
        # (kind, location): a file path or HLS folder, or the RTMP URL
        location = config.rtmp_url if config.container == "flv" else config.output
        self.output: tuple[OutputKind, str] = (config.container, str(location))
        self.tracks: dict[str, Track] = {}
        self.order: list[str] = []  # video track ids in the order they joined
        self.speaker = Speaker()
        self.mixer: Gst.Element | None = None
        self.compositor: Gst.Element | None = None
        self.frame_pad: Gst.Pad | None = None
        self.on_output: Callable[[], None] = lambda: None

    def _first_output(self, _pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        at = time.time()

        def announce() -> bool:
            self.on_output()  # the worker's `ready`
            emit(FirstPacket(stream="output", at=at))
            return False

        GLib.idle_add(announce)
        return Gst.PadProbeReturn.REMOVE

    # building ----------------------------------------------------------------------
    def public_error(self, element: str, message: str) -> str | None:
        """An RTMP target's failure in one sentence (not what the server answered)."""
        rtmp = self.output[0] == "flv" and element.startswith("rtmp2sink")
        return REMOTE_TARGET_FAILED if rtmp else None

    def build(self) -> None:
        r, w = self.request, self.job
        kind, location = self.output
        out = encoded_output(
            w.pipeline, kind,
            location=location, audio=True, video=not r.audio_only, fps=r.fps,
            video_kbps=r.video_kbps, hls_window=r.hls_window,
        )  # fmt: skip
        assert out.audio_in is not None
        self.mixer = make("audiomixer", latency=MIX_LATENCY_NS)
        bed = make("audiotestsrc", is_live=True, wave=4, samplesperbuffer=960)  # silence
        stereo = "audio/x-raw,rate=48000,channels=2"
        mixed = make("capsfilter", caps=caps(stereo))
        w.chain(bed, make("capsfilter", caps=caps(stereo)), self.mixer, mixed)
        link(mixed, out.audio_in)
        if not r.audio_only:
            assert out.video_in is not None
            # I420 throughout: what x264 takes. Left open, the compositor negotiated
            # 16-bit ABGR64 and a full-frame conversion after it (benchmarks/composite.py).
            size = f"format=I420,width={r.width},height={r.height}"
            self.compositor = make(
                "compositor", background=1, latency=MIX_LATENCY_NS
            )  # background black
            composed = make("capsfilter", caps=caps(f"video/x-raw,{size},framerate={r.fps}/1"))
            # The bed only keeps the mix running on the clock when nobody shows video: a
            # tiny invisible frame (alpha 0 is skipped), the background colour fills.
            bed_caps = make(
                "capsfilter",
                caps=caps(f"video/x-raw,format=I420,width=16,height=16,framerate={r.fps}/1"),
            )
            w.chain(
                make("videotestsrc", is_live=True, pattern=2),  # black
                bed_caps,
                self.compositor,
                composed,
            )
            bed_caps.get_static_pad("src").get_peer().set_property("alpha", 0.0)
            link(composed, out.video_in)
            # The active speaker's frame: a solid tile under the speaker's video.
            frame_src = make("videotestsrc", is_live=True, pattern=17, foreground_color=0xFFFFC800)
            frame_caps = make(
                "capsfilter",
                caps=caps(f"video/x-raw,format=I420,width=64,height=36,framerate={r.fps}/1"),
            )
            w.chain(frame_src, frame_caps)
            self.frame_pad = self.compositor.request_pad_simple("sink_%u")
            frame_caps.get_static_pad("src").link(self.frame_pad)
            self.frame_pad.set_property("zorder", 1)
            self.frame_pad.set_property("alpha", 0.0)
        encoder = out.video_encoder or out.audio_encoder
        assert encoder is not None
        encoder.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._first_output)
        w.rtp.ensure_rtpbin()  # in the pipeline from the start, even with no track yet
        GLib.timeout_add(SPEAKER_POLL_MS, self._pick_speaker)
        for spec in r.inputs:
            self.add(spec, live=False)

    def started(self) -> None:
        # Ready once output flows: tracks added while the mixers start up could
        # make them wait for data on every pad instead of running on the clock.
        self.on_output = lambda: emit(Ready(ports=self.job.rtp.ports(), pid=0))

    def command(self, command: AddInput | RemoveInput) -> InputReply:
        if isinstance(command, AddInput):
            ports = self.add(command.input, live=True)
            return InputAdded(input=command.input.id, ports=ports)
        self.remove(command.id)
        return InputRemoved(input=command.id)

    def on_message(self, msg: Gst.Message) -> bool:
        if msg.type == Gst.MessageType.ELEMENT:
            self._on_element(msg)
            return True
        return False

    def stop(self) -> None:
        # A track that never sent anything leaves rather than ends.
        for track_id in list(self.tracks):
            if track_id not in self.job.rtp.seen:
                self.remove(track_id)
        super().stop()

    # tracks ------------------------------------------------------------------------------
    def add(self, spec: CompositeInput, *, live: bool) -> Ports:
        """Add one track; returns its bound ports."""
        if spec.id in self.tracks:
            raise ValueError(f"input {spec.id!r} exists")
        w, s = self.job, spec.stream
        if s.kind == "video":
            if self.compositor is None:
                raise ValueError("this composite is audio only")
            text = GLib.markup_escape_text(spec.name or spec.participant)
            branch = [
                make(DECODE[s.encoding_name]),
                make("videoconvert"),
                make("textoverlay", text=text, valignment=1, halignment=0, shaded_background=True,
                     font_desc="Sans Bold 14"),
                make("queue", max_size_time=Gst.SECOND, max_size_buffers=0, max_size_bytes=0),
            ]  # fmt: skip
            aggregator = self.compositor
        else:
            level = make("level", interval=100 * Gst.MSECOND, post_messages=True)
            level.set_name(f"level-{spec.id}")
            branch = [
                make(DECODE[s.encoding_name]), make("audioconvert"), make("audioresample"),
                level,
                make("queue", max_size_time=Gst.SECOND, max_size_buffers=0, max_size_bytes=0),
            ]  # fmt: skip
            aggregator = self.mixer
        assert aggregator is not None
        made = w.rtp.add(spec.id, s, branch, wait_for_keyframe=True)
        pad = aggregator.request_pad_simple("sink_%u")
        tail = branch[-1].get_static_pad("src")
        if tail.link(pad) != Gst.PadLinkReturn.OK:
            raise RuntimeError(f"cannot link input {spec.id} to its mixer")
        track = Track(spec, made, pad)
        self.tracks[spec.id] = track
        if s.kind == "video":
            pad.set_property("zorder", 2)
            pad.set_property("alpha", 0.0)  # shown once laid out
            self.order.append(spec.id)
            tail.connect("notify::caps", lambda p, _: self._on_caps(spec.id, p))
        if live:
            for e in reversed(made.elements):
                e.sync_state_with_parent()
            w.pipeline.recalculate_latency()
        self.layout()
        return w.rtp.port_of(spec.id)

    def remove(self, track_id: str) -> None:
        track = self.tracks.pop(track_id, None)
        if track is None:
            raise KeyError(track_id)
        if track_id in self.order:
            self.order.remove(track_id)
        self.job.rtp.remove(track_id, track.made)
        parent = track.mixer_pad.get_parent_element()
        if parent is not None:
            parent.release_request_pad(track.mixer_pad)
        self.speaker.levels.pop(track.spec.participant, None)
        if self.speaker.current == track.spec.participant and not any(
            t.spec.participant == track.spec.participant for t in self.tracks.values()
        ):
            self.speaker.current = None
        self.layout()

    # layout ---------------------------------------------------------------------------------
    def _on_caps(self, track_id: str, pad: Gst.Pad) -> None:
        current = pad.get_current_caps()
        track = self.tracks.get(track_id)
        if current is None or track is None:
            return
        st = current.get_structure(0)
        ok_w, width = st.get_int("width")
        ok_h, height = st.get_int("height")
        if ok_w and ok_h and height > 0:
            track.aspect = width / height
            GLib.idle_add(self._layout_once)

    def _layout_once(self) -> bool:
        self.layout()
        return False

    def layout(self) -> None:
        """A grid in join order, the last row centred; each video fitted into its cell."""
        if self.compositor is None:
            return
        ids = [i for i in self.order if i in self.tracks]
        rects = tiles([self.tracks[i].aspect for i in ids], self.request.width, self.request.height)
        frame: Rect | None = None
        for track_id, rect in zip(ids, rects, strict=True):
            track = self.tracks[track_id]
            _place(track.mixer_pad, rect)
            if track.spec.participant == self.speaker.current and frame is None:
                x, y, w, h = rect
                frame = (x - FRAME_PX, y - FRAME_PX, w + 2 * FRAME_PX, h + 2 * FRAME_PX)
        if self.frame_pad is not None:
            if frame is None or len(ids) < 2:
                self.frame_pad.set_property("alpha", 0.0)
            else:
                _place(self.frame_pad, frame)

    # active speaker ----------------------------------------------------------------------------
    def _on_element(self, msg: Gst.Message) -> None:
        st = msg.get_structure()
        if st is None or st.get_name() != "level":
            return
        name = msg.src.get_name()
        track = self.tracks.get(name.removeprefix("level-"))
        if track is None:
            return
        rms = st.get_value("rms")
        if rms:
            db = max(float(v) for v in rms)
            p = track.spec.participant
            self.speaker.levels[p] = max(db, self.speaker.levels.get(p, -200.0))

    def _pick_speaker(self) -> bool:
        chosen = self.speaker.choose()
        if chosen != self.speaker.current:
            self.speaker.current = chosen
            emit(ActiveSpeaker(participant=chosen))
            self.layout()
        return True
