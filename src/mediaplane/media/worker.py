"""One media job as a child process: `python -m mediaplane.media.worker <config.json>`.

Why our own program on GStreamer's Python bindings instead of gst-launch-1.0:
the manager needs the pipeline's bus (error text with debug info, EOS), the
first RTP packet of each stream (a pad probe), RTP session statistics and the
ports udpsrc really bound, as structured data. gst-launch offers only text on
stderr. This program builds the pipeline element by element from a typed
config (no pipeline string, no client string) and speaks JSON lines on stdout:

    {"event": "ready", "ports": {"audio": {"rtp": 40000, "rtcp": 40001}}}
    {"event": "first-packet", "stream": "audio", "at": 1700000000.1}
    {"event": "stats", "packets_received": 250, "packets_lost": 0, "position_s": 5.0}
    {"event": "error", "message": "...", "debug": "..."}
    {"event": "eos"}
    {"event": "loop", "count": 2}                      (inject with loop, media/inject.py)

SIGINT sends EOS (the muxer finishes the file, then the process exits 0; an
injection has no file and ends at once, also exit 0);
SIGTERM stops at once (the container is crash-safe, so the file still plays).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

from mediaplane.media.composite import Composite, Handler  # noqa: E402
from mediaplane.media.gst_parts import DECODE, DEPAY, PARSE, emit, encoded_output, make  # noqa: E402
from mediaplane.media.inject import Inject  # noqa: E402
from mediaplane.media.models import CompositeInput, RtpStream, WorkerConfig  # noqa: E402

KEYFRAME_INTERVAL_S = 1.0  # at most one key frame request per video input per second


@dataclass
class MadeInput:
    elements: list[Gst.Element]  # the udpsrcs first, then depay and the branch
    rtpbin_pads: list[Gst.Pad]


def _unlinked_latency(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
    """Answer latency queries for an input whose RTP has not arrived yet.

    The depayloader is linked to rtpbin only when the first packet of its session
    comes in; until then a latency query through it would fail, and an aggregator
    downstream (compositor, audiomixer, flvmux) whose query fails is not live: it
    waits for data on every pad and produces nothing.
    """
    query = info.get_query()
    if query is not None and query.type == Gst.QueryType.LATENCY and pad.get_peer() is None:
        query.set_latency(True, 0, Gst.CLOCK_TIME_NONE)
        return Gst.PadProbeReturn.HANDLED
    return Gst.PadProbeReturn.OK


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.pipeline = Gst.Pipeline.new(f"job-{config.job_id}")
        self.loop = GLib.MainLoop()
        self.rtpbin: Gst.Element | None = None
        self.sessions: list[str] = []
        self.udpsrcs: dict[str, tuple[Gst.Element, Gst.Element]] = {}
        self.sink_for: dict[str, Gst.Element] = {}
        self.exit_code = 0
        self.stopping = False
        self.next_session = 0
        self.element_handlers: list[Handler] = []
        self.composite: Composite | None = None
        self.inject: Inject | None = None
        self.seen: set[str] = set()  # inputs that had a packet
        self.keyframe_asked: dict[str, float] = {}  # input -> monotonic time of the last ask
        self.command_buffer = b""

    def add(self, *elements: Gst.Element) -> None:
        for e in elements:
            self.pipeline.add(e)

    def chain(self, *elements: Gst.Element) -> None:
        self.add(*elements)
        for a, b in itertools.pairwise(elements):
            if not a.link(b):
                raise RuntimeError(f"cannot link {a.get_name()} to {b.get_name()}")

    # RTP input: udpsrc (RTP + RTCP) -> rtpbin -> depay -> [parse] -> <downstream>
    def rtp_input(
        self,
        name: str,
        stream: RtpStream,
        downstream: list[Gst.Element],
        *,
        wait_for_keyframe: bool = False,
    ) -> MadeInput:
        rtpbin = self.ensure_rtpbin()
        index = self.next_session
        self.next_session += 1
        self.sessions.append(name)
        caps = Gst.Caps.from_string(
            f"application/x-rtp,media={stream.kind},clock-rate={stream.clock_rate},"
            f"encoding-name={stream.encoding_name},payload={stream.payload_type}"
        )
        rtp = make("udpsrc", address=self.config.listen_ip, port=0, caps=caps)
        rtcp = make("udpsrc", address=self.config.listen_ip, port=0)
        self.add(rtp, rtcp)
        pads = [
            rtpbin.request_pad_simple(f"recv_rtp_sink_{index}"),
            rtpbin.request_pad_simple(f"recv_rtcp_sink_{index}"),
        ]
        rtp.get_static_pad("src").link(pads[0])
        rtcp.get_static_pad("src").link(pads[1])
        self.udpsrcs[name] = (rtp, rtcp)
        rtp.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._first_packet, name)
        depay = make(DEPAY[stream.encoding_name])
        if stream.kind == "video":
            # After a loss the picture is broken until the next key frame, and a browser
            # sends one only when asked. The depayloader notices the gap and asks upstream
            # (GstForceKeyUnit); nothing here sends RTCP to the SFU, so the probe relays it
            # to the manager as `keyframe-wanted` and the control plane asks the SFU.
            # `wait_for_keyframe` (a composite, whose requests the control plane relays):
            # the broken frames are dropped until the key frame, a still picture rather
            # than a smeared one. Without a relay that would freeze the picture until
            # the encoder's own next key frame (aiortc: 100 s), so it is asked for.
            depay.set_property("request-keyframe", True)
            depay.set_property("wait-for-keyframe", wait_for_keyframe)
            depay.get_static_pad("sink").add_probe(
                Gst.PadProbeType.EVENT_UPSTREAM, self._keyframe_wanted, name
            )
        elements = [depay]
        if stream.encoding_name in PARSE:
            elements.append(make(PARSE[stream.encoding_name]))
        self.chain(*elements, *downstream)
        depay.get_static_pad("sink").add_probe(Gst.PadProbeType.QUERY_UPSTREAM, _unlinked_latency)
        self.sink_for[str(index)] = depay
        return MadeInput([rtp, rtcp, *elements, *downstream], pads)

    def ensure_rtpbin(self) -> Gst.Element:
        if self.rtpbin is None:
            # latency: the jitter buffer; RTCP sender reports give A/V sync.
            self.rtpbin = make("rtpbin", latency=200, drop_on_latency=False)
            self.add(self.rtpbin)
            self.rtpbin.connect("pad-added", self._on_rtpbin_pad)
        return self.rtpbin

    def port_of(self, name: str) -> dict[str, int]:
        rtp, rtcp = self.udpsrcs[name]
        return {"rtp": rtp.get_property("port"), "rtcp": rtcp.get_property("port")}

    def forget_input(self, name: str) -> None:
        self.udpsrcs.pop(name, None)
        index = self.sessions.index(name) if name in self.sessions else -1
        if index >= 0:
            self.sessions[index] = ""
            self.sink_for.pop(str(index), None)

    def _on_rtpbin_pad(self, _bin: Gst.Element, pad: Gst.Pad) -> None:
        name = pad.get_name()  # recv_rtp_src_<session>_<ssrc>_<pt>
        if not name.startswith("recv_rtp_src_"):
            return
        session = name.split("_")[3]
        target = self.sink_for.get(session)
        if target is None:
            return
        sink = target.get_static_pad("sink")
        if sink.is_linked():
            # A new SSRC on the same session (a republish): switch to it.
            peer = sink.get_peer()
            if peer is not None:
                peer.unlink(sink)
        pad.link(sink)

    def _keyframe_wanted(
        self, _pad: Gst.Pad, info: Gst.PadProbeInfo, name: str
    ) -> Gst.PadProbeReturn:
        event = info.get_event()
        structure = event.get_structure() if event is not None else None
        if structure is not None and structure.get_name() == "GstForceKeyUnit":
            now = time.monotonic()
            # One request per KEYFRAME_INTERVAL_S at most: the SFU relays each as a PLI,
            # and a key frame is several times the size of a delta frame.
            if now - self.keyframe_asked.get(name, -KEYFRAME_INTERVAL_S) >= KEYFRAME_INTERVAL_S:
                self.keyframe_asked[name] = now
                emit("keyframe-wanted", input=name)
        return Gst.PadProbeReturn.OK

    def _first_packet(
        self, _pad: Gst.Pad, _info: Gst.PadProbeInfo, name: str
    ) -> Gst.PadProbeReturn:
        self.seen.add(name)
        emit("first-packet", stream=name, at=time.time())
        return Gst.PadProbeReturn.REMOVE

    # pipelines ----------------------------------------------------------------
    def build(self) -> None:
        kind = self.config.kind
        if kind == "record":
            self.build_record()
        elif kind == "stream":
            self.build_stream()
        elif kind == "inject":
            self.build_inject()
        elif kind == "composite":
            self.build_composite()
        else:
            self.build_transcode()

    def build_composite(self) -> None:
        c = self.config
        assert c.composite is not None
        if c.container == "hls":
            output = ("hls", str(c.output))
        elif c.container == "flv":
            output = ("flv", str(c.rtmp_url))
        else:
            output = (str(c.container), str(c.output))
        self.composite = Composite(self, c.composite, output)
        self.composite.build()

    def _filesink(self) -> Gst.Element:
        # Unbuffered: every muxed chunk reaches the kernel, so a kill -9 loses nothing written.
        return make(
            "filesink", location=self.config.output, buffer_mode=2, sync=False, async_=False
        )

    def build_record(self) -> None:
        c = self.config
        if c.container == "ogg":
            mux = make("oggmux", max_delay=200_000_000, max_page_delay=200_000_000)
        elif c.container == "webm":
            mux = make("webmmux", streamable=True)
        else:
            mux = make("matroskamux", streamable=True)
        sink = self._filesink()
        self.chain(mux, sink)
        for name, stream in (("audio", c.audio), ("video", c.video)):
            if stream is not None:
                queue = make(
                    "queue", max_size_time=3 * Gst.SECOND, max_size_buffers=0, max_size_bytes=0
                )
                self.rtp_input(name, stream, [queue])
                queue.get_static_pad("src").link(
                    mux.request_pad_simple(f"{'audio' if name == 'audio' else 'video'}_%u")
                )

    def build_stream(self) -> None:
        c = self.config
        if c.container == "hls":
            kind, location = "hls", str(c.output)
        else:
            kind, location = "flv", str(c.rtmp_url)
        out = encoded_output(
            self.pipeline, kind, location=location,  # type: ignore[arg-type]
            audio=c.audio is not None, video=c.video is not None, video_kbps=1500,
            hls_window=c.hls_window,
        )  # fmt: skip
        streams = (("video", c.video, out.video_in), ("audio", c.audio, out.audio_in))
        for name, stream, raw_in in streams:
            if stream is not None and raw_in is not None:
                tail = make("queue")
                self.rtp_input(name, stream, [make(DECODE[stream.encoding_name]), tail])
                if not tail.link(raw_in):
                    raise RuntimeError(f"cannot link the {name} decoder to its encoder")

    def build_inject(self) -> None:
        self.inject = Inject(self)
        self.inject.build()

    def build_transcode(self) -> None:
        c = self.config
        assert c.source is not None
        src = make("filesrc", location=c.source)
        dec = make("decodebin")
        self.chain(src, dec)
        fmt = c.transcode_format
        if fmt == "ogg-opus":
            mux = make("oggmux")
        elif fmt == "webm-vp8-opus":
            mux = make("webmmux")
        else:
            mux = make("mp4mux", faststart=True)
        self.chain(mux, self._filesink())
        audio_enc = "opusenc" if fmt != "mp4-h264-aac" else "avenc_aac"
        video_enc = "vp8enc" if fmt == "webm-vp8-opus" else "x264enc"

        def on_pad(_d: Gst.Element, pad: Gst.Pad) -> None:
            kind = (pad.get_current_caps() or pad.query_caps(None)).get_structure(0).get_name()
            if kind.startswith("audio/"):
                chain = [
                    make("queue"),
                    make("audioconvert"),
                    make("audioresample"),
                    make(audio_enc),
                ]
                pad_name = "audio_%u"
            elif kind.startswith("video/") and fmt != "ogg-opus":
                props: dict[str, Any] = (
                    {"deadline": 1} if video_enc == "vp8enc" else {"speed_preset": "veryfast"}
                )
                chain = [make("queue"), make("videoconvert"), make(video_enc, **props)]
                pad_name = "video_%u"
            else:
                return
            self.chain(*chain)
            for e in chain:
                e.sync_state_with_parent()
            pad.link(chain[0].get_static_pad("sink"))
            chain[-1].get_static_pad("src").link(mux.request_pad_simple(pad_name))
            emit("first-packet", stream=kind.split("/")[0], at=time.time())

        dec.connect("pad-added", on_pad)

    # running ------------------------------------------------------------------
    def ports(self) -> dict[str, dict[str, int]]:
        return {
            name: {"rtp": rtp.get_property("port"), "rtcp": rtcp.get_property("port")}
            for name, (rtp, rtcp) in self.udpsrcs.items()
        }

    def stats(self) -> bool:
        received = lost = 0
        if self.rtpbin is not None:
            for i in range(len(self.sessions)):
                session = self.rtpbin.emit("get-internal-session", i)
                if session is None:
                    continue
                stats = session.get_property("stats")
                sources = stats.get_value("source-stats") if stats else None
                for s in sources or []:
                    if s.get_value("internal"):
                        continue
                    received += int(s.get_value("packets-received") or 0)
                    lost += max(0, int(s.get_value("packets-lost") or 0))
        ok, position = self.pipeline.query_position(Gst.Format.TIME)
        position_s = position / Gst.SECOND if ok else 0.0
        if self.inject is not None:
            position_s = self.inject.running_time_s()  # grows across loops
        emit("stats", packets_received=received, packets_lost=lost, position_s=position_s)
        return True

    def on_message(self, _bus: Gst.Bus, msg: Gst.Message) -> None:
        if self.inject is not None and self.inject.on_message(msg):
            return
        if msg.type == Gst.MessageType.ELEMENT:
            for handler in self.element_handlers:
                handler(msg)
        elif msg.type == Gst.MessageType.EOS:
            self.stats()  # the final position: a fast transcode may end between two ticks
            emit("eos")
            self.loop.quit()
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            emit("error", message=f"{msg.src.get_name()}: {err.message}", debug=debug or "")
            self.exit_code = 2
            self.loop.quit()

    def eos(self) -> bool:
        if not self.stopping and self.inject is not None:
            # Nothing to finish (no file): a stopped injection ends at once, cleanly.
            self.stopping = True
            emit("eos")
            self.loop.quit()
            return False
        if not self.stopping:
            self.stopping = True
            # A stream that never sent a packet has no rtpbin pad, so the sources'
            # EOS cannot reach its branch: end that branch directly, or the muxer
            # would wait for it forever.
            if self.composite is not None:
                # A track that never sent anything leaves rather than ends.
                for track_id in list(self.composite.tracks):
                    if track_id not in self.seen:
                        self.composite.remove(track_id)
            for depay in self.sink_for.values():
                sink = depay.get_static_pad("sink")
                if not sink.is_linked():
                    sink.send_event(Gst.Event.new_eos())
            self.pipeline.send_event(Gst.Event.new_eos())
        return False

    def run(self) -> int:
        self.build()
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            # The bus carries the reason (e.g. a file that cannot be opened).
            msg = bus.timed_pop_filtered(Gst.SECOND, Gst.MessageType.ERROR)
            if msg is not None:
                err, debug = msg.parse_error()
                emit("error", message=f"{msg.src.get_name()}: {err.message}", debug=debug or "")
            else:
                emit("error", message="the pipeline refused to start", debug="")
            return 2
        if self.composite is None:
            emit("ready", ports=self.ports(), pid=0)
        else:
            # Ready once output flows: tracks added while the mixers start up could
            # make them wait for data on every pad instead of running on the clock.
            self.composite.on_output = lambda: emit("ready", ports=self.ports(), pid=0)
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, self.eos)
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, self._terminate)
        GLib.timeout_add(1000, self.stats)
        if self.composite is not None:
            GLib.io_add_watch(
                sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP, self._commands
            )
        self.loop.run()
        self.stats()
        self.pipeline.set_state(Gst.State.NULL)
        return self.exit_code

    def _commands(self, fd: int, _condition: GLib.IOCondition) -> bool:
        """Command lines from the manager on stdin (composite inputs)."""
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            return False  # the manager is gone; keep running until signalled
        self.command_buffer += chunk
        *lines, self.command_buffer = self.command_buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._command(line.decode(errors="replace"))
        return True

    def _command(self, line: str) -> None:
        """One command: add-input / remove-input."""
        ident = ""
        try:
            cmd = json.loads(line)
            name = str(cmd.get("cmd"))
            assert self.composite is not None
            if name == "add-input":
                ident = str((cmd.get("input") or {}).get("id", ""))
                spec = CompositeInput.model_validate(cmd["input"])
                ports = self.composite.add(spec, live=True)
                emit("input-added", input=spec.id, ports=ports)
            elif name == "remove-input":
                ident = str(cmd["id"])
                self.composite.remove(ident)
                emit("input-removed", input=ident)
            else:
                emit("input-error", input="", message=f"unknown command {name!r}")
        except Exception as e:
            # The command protocol's one reply point: an exception escaping here would
            # remove the stdin watch, and every later command would time out.
            emit("input-error", input=ident, message=str(e) or type(e).__name__)

    def _terminate(self) -> bool:
        self.exit_code = 143
        self.loop.quit()
        return False


def main() -> int:
    config = WorkerConfig.model_validate_json(Path(sys.argv[1]).read_text())
    try:
        return Worker(config).run()
    except RuntimeError as e:
        emit("error", message=str(e), debug="")
        return 2
    except Exception as e:  # a bug while building: say what it was, exit non-zero
        emit("error", message=f"pipeline build failed: {type(e).__name__}: {e}", debug="")
        return 2


if __name__ == "__main__":
    sys.exit(main())
