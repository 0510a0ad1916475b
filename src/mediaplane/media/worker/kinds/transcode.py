"""Transcode: a file under the media root into another format, as fast as the CPU allows.

filesrc -> decodebin -> audio: queue -> audioconvert -> audioresample -> opusenc | avenc_aac
                     -> video: queue -> videoconvert -> vp8enc | x264enc
    -> oggmux | webmmux | mp4mux (faststart) -> filesink
"""

from __future__ import annotations

import time
from typing import Any

from mediaplane.media.worker.events import emit
from mediaplane.media.worker.gst import Gst, make
from mediaplane.media.worker.kind import Kind
from mediaplane.media.worker.outputs import filesink
from mediaplane.wire.media import FirstPacket, TranscodeConfig


class Transcode(Kind[TranscodeConfig]):
    name = "transcode"
    elements = ("filesrc", "decodebin", "queue", "audioconvert", "audioresample",
                "videoconvert", "opusenc", "vp8enc", "x264enc", "avenc_aac", "aacparse",
                "h264parse", "oggmux", "webmmux", "mp4mux", "matroskamux", "filesink")  # fmt: skip

    def build(self) -> None:
        c = self.config
        src = make("filesrc", location=c.source)
        dec = make("decodebin")
        self.job.chain(src, dec)
        fmt = c.format
        if fmt == "ogg-opus":
            mux = make("oggmux")
        elif fmt == "webm-vp8-opus":
            mux = make("webmmux")
        else:
            mux = make("mp4mux", faststart=True)
        self.job.chain(mux, filesink(c.output))
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
            self.job.chain(*chain)
            for e in chain:
                e.sync_state_with_parent()
            pad.link(chain[0].get_static_pad("sink"))
            chain[-1].get_static_pad("src").link(mux.request_pad_simple(pad_name))
            emit(FirstPacket(stream=kind.split("/")[0], at=time.time()))

        dec.connect("pad-added", on_pad)
