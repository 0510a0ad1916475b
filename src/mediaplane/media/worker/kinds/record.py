"""Record: RTP from the SFU into a crash-safe file, without transcoding.

audio/video RTP input -> queue -> oggmux (Opus only) | webmmux (VP8/VP9) | matroskamux (H264)
    -> filesink (unbuffered)
"""

from __future__ import annotations

from mediaplane.media.worker import rtp_inputs
from mediaplane.media.worker.gst import Gst, make
from mediaplane.media.worker.kind import Kind
from mediaplane.media.worker.outputs import filesink
from mediaplane.wire.media import RecordConfig


class Record(Kind[RecordConfig]):
    name = "record"
    elements = (*rtp_inputs.ELEMENTS, "oggmux", "matroskamux", "webmmux", "filesink")

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
                self.job.rtp.add(name, stream, [queue])
                queue.get_static_pad("src").link(mux.request_pad_simple(f"{name}_%u"))
