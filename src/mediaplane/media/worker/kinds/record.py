"""Record: RTP from the SFU into a crash-safe file, without transcoding.

audio/video RTP input -> queue -> oggmux (Opus only) | webmmux (VP8/VP9) | matroskamux (H264)
    -> filesink (unbuffered)

H.264 goes in as `avc3` (its SPS/PPS in the stream before every key frame) and the muxer
sees only its first caps: a simulcast camera's layer switch or a publisher scaling down
changes the SPS (the size), and matroskamux refuses any caps change once its header is
written ("Could not multiplex stream": the recording failed at the first switch, seen in
tests/integration/test_video_codecs.py). The decoder takes the new SPS from the stream.
"""

from __future__ import annotations

from mediaplane.media.worker import rtp_inputs
from mediaplane.media.worker.gst import Gst, make
from mediaplane.media.worker.kind import Kind
from mediaplane.media.worker.outputs import filesink
from mediaplane.wire.media import RecordConfig


def _first_caps_only(_pad: Gst.Pad, info: Gst.PadProbeInfo, seen: list[bool]) -> Gst.PadProbeReturn:
    event = info.get_event()
    if event is None or event.type != Gst.EventType.CAPS:
        return Gst.PadProbeReturn.OK
    if seen:
        return Gst.PadProbeReturn.DROP
    seen.append(True)
    return Gst.PadProbeReturn.OK


def _in_band_h264() -> list[Gst.Element]:
    """An H.264 stream as avc3 with its parameter sets in band (see the module doc)."""
    caps = Gst.Caps.from_string("video/x-h264,stream-format=avc3,alignment=au")
    return [make("h264parse", config_interval=-1), make("capsfilter", caps=caps)]


class Record(Kind[RecordConfig]):
    name = "record"
    elements = (*rtp_inputs.ELEMENTS, "oggmux", "matroskamux", "webmmux", "filesink", "capsfilter")

    def build(self) -> None:
        c = self.config
        if c.container == "ogg":
            mux = make("oggmux", max_delay=200_000_000, max_page_delay=200_000_000)
        elif c.container == "webm":
            mux = make("webmmux", streamable=True)
        else:
            mux = make("matroskamux", streamable=True)
        self.job.chain(mux, filesink(c.output))
        for name, stream in (("audio", c.audio), ("video", c.video)):
            if stream is not None:
                queue = make(
                    "queue", max_size_time=3 * Gst.SECOND, max_size_buffers=0, max_size_bytes=0
                )
                src = queue.get_static_pad("src")
                downstream = [queue]
                if stream.encoding_name == "H264":
                    downstream = [*_in_band_h264(), queue]
                    src.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, _first_caps_only, [])
                self.job.rtp.add(name, stream, downstream)
                src.link(mux.request_pad_simple(f"{name}_%u"))
