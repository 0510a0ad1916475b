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

SIGINT sends EOS (the muxer finishes the file, then the process exits 0);
SIGTERM stops at once (the container is crash-safe, so the file still plays).
"""

from __future__ import annotations

import itertools
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

from mediaplane.media.models import RtpStream, WorkerConfig  # noqa: E402

Gst.init(None)

DEPAY = {"OPUS": "rtpopusdepay", "VP8": "rtpvp8depay", "VP9": "rtpvp9depay", "H264": "rtph264depay"}
PARSE = {"OPUS": "opusparse", "H264": "h264parse"}
DECODE = {"OPUS": "opusdec", "VP8": "vp8dec", "VP9": "vp9dec", "H264": "avdec_h264"}


def emit(event: str, **fields: Any) -> None:
    try:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        pass  # the manager is gone; keep recording until told to stop


def make(factory: str, **props: Any) -> Gst.Element:
    element = Gst.ElementFactory.make(factory)
    if element is None:
        raise RuntimeError(f"GStreamer element {factory!r} is missing")
    for key, value in props.items():
        element.set_property(key.rstrip("_").replace("_", "-"), value)
    return element


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

    def add(self, *elements: Gst.Element) -> None:
        for e in elements:
            self.pipeline.add(e)

    def chain(self, *elements: Gst.Element) -> None:
        self.add(*elements)
        for a, b in itertools.pairwise(elements):
            if not a.link(b):
                raise RuntimeError(f"cannot link {a.get_name()} to {b.get_name()}")

    # RTP input: udpsrc (RTP + RTCP) -> rtpbin -> depay -> [parse] -> <downstream>
    def rtp_input(self, name: str, stream: RtpStream, downstream: list[Gst.Element]) -> None:
        if self.rtpbin is None:
            # latency: the jitter buffer; RTCP sender reports give A/V sync.
            self.rtpbin = make("rtpbin", latency=200, drop_on_latency=False)
            self.add(self.rtpbin)
            self.rtpbin.connect("pad-added", self._on_rtpbin_pad)
        index = len(self.sessions)
        self.sessions.append(name)
        caps = Gst.Caps.from_string(
            f"application/x-rtp,media={stream.kind},clock-rate={stream.clock_rate},"
            f"encoding-name={stream.encoding_name},payload={stream.payload_type}"
        )
        rtp = make("udpsrc", address=self.config.listen_ip, port=0, caps=caps)
        rtcp = make("udpsrc", address=self.config.listen_ip, port=0)
        self.add(rtp, rtcp)
        rtp.get_static_pad("src").link(self.rtpbin.request_pad_simple(f"recv_rtp_sink_{index}"))
        rtcp.get_static_pad("src").link(self.rtpbin.request_pad_simple(f"recv_rtcp_sink_{index}"))
        self.udpsrcs[name] = (rtp, rtcp)
        rtp.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self._first_packet, name)
        depay = make(DEPAY[stream.encoding_name])
        elements = [depay]
        if stream.encoding_name in PARSE:
            elements.append(make(PARSE[stream.encoding_name]))
        self.chain(*elements, *downstream)
        self.sink_for[str(index)] = depay

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

    def _first_packet(
        self, _pad: Gst.Pad, _info: Gst.PadProbeInfo, name: str
    ) -> Gst.PadProbeReturn:
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
        else:
            self.build_transcode()

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
            sink = make(
                "hlssink2",
                location=f"{c.output}/segment%05d.ts",
                playlist_location=f"{c.output}/playlist.m3u8",
                target_duration=2,
                max_files=0,
                playlist_length=0,
            )
            self.add(sink)
            video_pad, audio_pad = "video", "audio"
        else:
            mux = make("flvmux", streamable=True)
            sink = make("rtmpsink", location=c.rtmp_url)
            self.chain(mux, sink)
            sink = mux
            video_pad, audio_pad = "video", "audio"
        if c.video is not None:
            enc = [
                make(DECODE[c.video.encoding_name]), make("videoconvert"),
                make("x264enc", tune="zerolatency", speed_preset="ultrafast", key_int_max=60,
                     bitrate=1500),
                make("h264parse"), make("queue"),
            ]  # fmt: skip
            self.rtp_input("video", c.video, enc)
            enc[-1].get_static_pad("src").link(sink.request_pad_simple(video_pad))
        if c.audio is not None:
            enc = [
                make(DECODE[c.audio.encoding_name]), make("audioconvert"), make("audioresample"),
                make("avenc_aac", bitrate=128000), make("aacparse"), make("queue"),
            ]  # fmt: skip
            self.rtp_input("audio", c.audio, enc)
            enc[-1].get_static_pad("src").link(sink.request_pad_simple(audio_pad))

    def build_inject(self) -> None:
        c = self.config
        assert c.source is not None
        uri = c.source if "://" in c.source else Gst.filename_to_uri(c.source)
        dec = make("uridecodebin", uri=uri)
        self.add(dec)
        outputs: dict[str, Gst.Element] = {}
        if c.audio_target is not None:
            t = c.audio_target
            chain = [
                make("queue"), make("audioconvert"), make("audioresample"),
                make("opusenc", frame_size=20), make("rtpopuspay", pt=t.payload_type, ssrc=t.ssrc),
                make("udpsink", host=t.ip, port=t.port, sync=True),
            ]  # fmt: skip
            self.chain(*chain)
            outputs["audio"] = chain[0]
        if c.video_target is not None:
            t = c.video_target
            chain = [
                make("queue"), make("videoconvert"),
                make("vp8enc", deadline=1, cpu_used=8, keyframe_max_dist=30,
                     target_bitrate=800_000),
                make("rtpvp8pay", pt=t.payload_type, ssrc=t.ssrc),
                make("udpsink", host=t.ip, port=t.port, sync=True),
            ]  # fmt: skip
            self.chain(*chain)
            outputs["video"] = chain[0]

        def on_pad(_d: Gst.Element, pad: Gst.Pad) -> None:
            caps = pad.get_current_caps() or pad.query_caps(None)
            kind = caps.get_structure(0).get_name().split("/")[0]
            target = outputs.get(kind)
            if target is not None and not target.get_static_pad("sink").is_linked():
                pad.link(target.get_static_pad("sink"))
                if kind in ("audio", "video"):
                    pad.add_probe(Gst.PadProbeType.BUFFER, self._first_packet, kind)

        dec.connect("pad-added", on_pad)

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
        emit("stats", packets_received=received, packets_lost=lost,
             position_s=position / Gst.SECOND if ok else 0.0)  # fmt: skip
        return True

    def on_message(self, _bus: Gst.Bus, msg: Gst.Message) -> None:
        if msg.type == Gst.MessageType.EOS:
            emit("eos")
            self.loop.quit()
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            emit("error", message=f"{msg.src.get_name()}: {err.message}", debug=debug or "")
            self.exit_code = 2
            self.loop.quit()

    def eos(self) -> bool:
        if not self.stopping:
            self.stopping = True
            # A stream that never sent a packet has no rtpbin pad, so the sources'
            # EOS cannot reach its branch: end that branch directly, or the muxer
            # would wait for it forever.
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
        emit("ready", ports=self.ports(), pid=0)
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, self.eos)
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, self._terminate)
        GLib.timeout_add(1000, self.stats)
        self.loop.run()
        self.stats()
        self.pipeline.set_state(Gst.State.NULL)
        return self.exit_code

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


if __name__ == "__main__":
    sys.exit(main())
