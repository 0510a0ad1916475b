"""Pieces the worker's pipelines share: element creation, the event line, encoders and outputs.

Imported only by the worker process (it initialises GStreamer).
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass
from typing import Any, Literal

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

Gst.init(None)

DEPAY = {"OPUS": "rtpopusdepay", "VP8": "rtpvp8depay", "VP9": "rtpvp9depay", "H264": "rtph264depay"}
PARSE = {"OPUS": "opusparse", "H264": "h264parse"}
DECODE = {"OPUS": "opusdec", "VP8": "vp8dec", "VP9": "vp9dec", "H264": "avdec_h264"}

OutputKind = Literal["mp4", "mkv", "webm", "flv", "hls"]


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout: the worker's only way of telling the manager things."""
    try:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        pass  # the manager is gone; keep working until told to stop


def make(factory: str, name: str | None = None, **props: Any) -> Gst.Element:
    element = Gst.ElementFactory.make(factory, name)
    if element is None:
        raise RuntimeError(f"GStreamer element {factory!r} is missing")
    for key, value in props.items():
        element.set_property(key.rstrip("_").replace("_", "-"), value)
    return element


def caps(text: str) -> Gst.Caps:
    return Gst.Caps.from_string(text)


def queue(leaky: bool = False) -> Gst.Element:
    q = make("queue", max_size_time=3 * Gst.SECOND, max_size_buffers=0, max_size_bytes=0)
    if leaky:
        q.set_property("leaky", 2)  # downstream: drop the oldest rather than block a live source
    return q


@dataclass
class EncodedOutput:
    """Where raw audio and raw video go in: encoders in front of a muxer/sink."""

    audio_in: Gst.Element | None
    video_in: Gst.Element | None
    video_encoder: Gst.Element | None
    audio_encoder: Gst.Element | None
    elements: list[Gst.Element]


def encoded_output(
    pipeline: Gst.Pipeline,
    kind: OutputKind,
    *,
    location: str,
    audio: bool,
    video: bool,
    fps: int = 30,
    video_kbps: int = 2500,
    hls_window: int = 0,
) -> EncodedOutput:
    """Encoders + muxer + sink for a file (mp4, mkv, webm), RTMP (flv) or HLS.

    mp4 = H264 + AAC (fragmented, so a killed worker leaves a playable file),
    mkv = H264 + Opus, webm = VP8 + Opus, flv (RTMP) and HLS = H264 + AAC.
    `location` is a file path, an RTMP URL or an HLS folder. `hls_window` N > 0 makes a
    live HLS playlist of N segments; a segment that left it stays on disk for its own
    length plus the playlist's (RFC 8216 6.2.2: N + 1 more), older ones are deleted.
    """
    elements: list[Gst.Element] = []

    def add(*es: Gst.Element) -> None:
        for e in es:
            pipeline.add(e)
            elements.append(e)

    def link(*es: Gst.Element) -> None:
        for a, b in itertools.pairwise(es):
            if not a.link(b):
                raise RuntimeError(f"cannot link {a.get_name()} to {b.get_name()}")

    if kind == "hls":
        sink = make(
            "hlssink2",
            location=f"{location}/segment%05d.ts",
            playlist_location=f"{location}/playlist.m3u8",
            target_duration=2,
            max_files=2 * hls_window + 1 if hls_window else 0,
            playlist_length=hls_window,
        )
        add(sink)
        mux = sink
        pads = {"audio": "audio", "video": "video"}
    else:
        if kind == "flv":
            mux = make("flvmux", streamable=True)
            # Not async: an async sink in this live pipeline sometimes never finished its
            # READY->PAUSED preroll, which held the whole pipeline in PAUSED (no output).
            sink = make("rtmp2sink", location=location, timeout=5, async_=False)
        else:
            if kind == "mp4":
                mux = make("mp4mux", fragment_duration=1000, streamable=True)
            elif kind == "mkv":
                mux = make("matroskamux", streamable=True)
            else:
                mux = make("webmmux", streamable=True)
            # Unbuffered: every muxed chunk reaches the kernel, so a kill -9 loses nothing.
            sink = make("filesink", location=location, buffer_mode=2, sync=False, async_=False)
        add(mux, sink)
        link(mux, sink)
        pads = (
            {"audio": "audio", "video": "video"}
            if kind == "flv"
            else {"audio": "audio_%u", "video": "video_%u"}
        )

    video_in = audio_in = video_enc = audio_enc = None
    if video:
        convert = make("videoconvert")
        if kind == "webm":
            video_enc = make(
                "vp8enc", deadline=1, cpu_used=8, threads=2, end_usage=1,
                target_bitrate=video_kbps * 1000, keyframe_max_dist=fps * 2,
            )  # fmt: skip
            chain = [convert, video_enc, queue()]
        else:
            video_enc = make(
                "x264enc", tune="zerolatency", speed_preset="veryfast", bitrate=video_kbps,
                key_int_max=fps * 2, bframes=0,
            )  # fmt: skip
            profile = make("capsfilter", caps=caps("video/x-h264,profile=main"))
            chain = [convert, video_enc, profile, make("h264parse"), queue()]
        add(*chain)
        link(*chain)
        chain[-1].get_static_pad("src").link(mux.request_pad_simple(pads["video"]))
        video_in = convert
    if audio:
        convert, resample = make("audioconvert"), make("audioresample")
        if kind in ("mkv", "webm"):
            audio_enc = make("opusenc", bitrate=64000)
            chain = [convert, resample, audio_enc, queue()]
        else:
            audio_enc = make("avenc_aac", bitrate=128000)
            chain = [convert, resample, audio_enc, make("aacparse"), queue()]
        add(*chain)
        link(*chain)
        chain[-1].get_static_pad("src").link(mux.request_pad_simple(pads["audio"]))
        audio_in = convert
    return EncodedOutput(audio_in, video_in, video_enc, audio_enc, elements)
