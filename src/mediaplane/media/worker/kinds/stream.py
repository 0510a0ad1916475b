"""Stream: RTP from the SFU decoded and encoded again for RTMP or HLS.

audio/video RTP input -> decoder -> queue -> outputs.encoded_output (H264 + AAC)
    -> flvmux -> rtmp2sink, or hlssink2
"""

from __future__ import annotations

from mediaplane.media.worker import outputs, rtp_inputs
from mediaplane.media.worker.codecs import DECODE, DECODE_ELEMENTS
from mediaplane.media.worker.gst import make
from mediaplane.media.worker.kind import Kind
from mediaplane.media.worker.outbound import REMOTE_TARGET_FAILED
from mediaplane.media.worker.outputs import encoded_output
from mediaplane.wire.media import StreamConfig


class Stream(Kind[StreamConfig]):
    name = "stream"
    elements = (*rtp_inputs.ELEMENTS, *DECODE_ELEMENTS, *outputs.ELEMENTS)

    def public_error(self, element: str, message: str) -> str | None:
        """An RTMP target's failure in one sentence (not what the server answered)."""
        rtmp = self.config.container == "flv" and element.startswith("rtmp2sink")
        return REMOTE_TARGET_FAILED if rtmp else None

    def build(self) -> None:
        c = self.config
        out = encoded_output(
            self.job.pipeline, c.container,
            location=str(c.output) if c.container == "hls" else str(c.rtmp_url),
            audio=c.audio is not None, video=c.video is not None, video_kbps=1500,
            hls_window=c.hls_window,
        )  # fmt: skip
        streams = (("video", c.video, out.video_in), ("audio", c.audio, out.audio_in))
        for name, stream, raw_in in streams:
            if stream is not None and raw_in is not None:
                tail = make("queue")
                self.job.rtp.add(name, stream, [make(DECODE[stream.encoding_name]), tail])
                if not tail.link(raw_in):
                    raise RuntimeError(f"cannot link the {name} decoder to its encoder")
