"""Where a kind's media leaves: encoders in front of a muxer and a sink (file, RTMP, HLS).

raw video -> videoconvert -> x264enc (+ main profile, h264parse) | vp8enc -> queue -+
raw audio -> audioconvert -> audioresample -> avenc_aac (+ aacparse) | opusenc -> queue -+
    -> mp4mux | matroskamux | webmmux -> filesink,  flvmux -> rtmp2sink,  or hlssink2
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mediaplane.media.worker.gst import Gst, caps, link, make, queue

OutputKind = Literal["mp4", "mkv", "webm", "flv", "hls"]

ELEMENTS = ("x264enc", "avenc_aac", "aacparse", "flvmux", "rtmp2sink", "hlssink2",
            "matroskamux", "webmmux", "mp4mux", "opusenc", "vp8enc", "filesink")  # fmt: skip
"""Every element encoded_output may make."""


@dataclass
class EncodedOutput:
    """Where raw audio and raw video go in: encoders in front of a muxer/sink."""

    audio_in: Gst.Element | None
    video_in: Gst.Element | None
    video_encoder: Gst.Element | None
    audio_encoder: Gst.Element | None
    elements: list[Gst.Element] = field(default_factory=list)


def filesink(location: str) -> Gst.Element:
    # Unbuffered: every muxed chunk reaches the kernel, so a kill -9 loses nothing written.
    return make("filesink", location=location, buffer_mode=2, sync=False, async_=False)


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
    out = EncodedOutput(None, None, None, None)

    def add(*es: Gst.Element) -> None:
        for e in es:
            pipeline.add(e)
            out.elements.append(e)

    mux, sink_elements, pads = _muxer(kind, location, hls_window)
    add(*sink_elements)
    link(*sink_elements)
    if video:
        out.video_encoder, chain = _video_chain(kind, fps, video_kbps)
        add(*chain)
        link(*chain)
        chain[-1].get_static_pad("src").link(mux.request_pad_simple(pads["video"]))
        out.video_in = chain[0]
    if audio:
        out.audio_encoder, chain = _audio_chain(kind)
        add(*chain)
        link(*chain)
        chain[-1].get_static_pad("src").link(mux.request_pad_simple(pads["audio"]))
        out.audio_in = chain[0]
    return out


def _muxer(
    kind: OutputKind, location: str, hls_window: int
) -> tuple[Gst.Element, list[Gst.Element], dict[str, str]]:
    """(the element encoders link to, the muxer-to-sink chain, its pad template per media)."""
    if kind == "hls":
        sink = make(
            "hlssink2",
            location=f"{location}/segment%05d.ts",
            playlist_location=f"{location}/playlist.m3u8",
            target_duration=2,
            max_files=2 * hls_window + 1 if hls_window else 0,
            playlist_length=hls_window,
        )
        return sink, [sink], {"audio": "audio", "video": "video"}
    if kind == "flv":
        mux = make("flvmux", streamable=True)
        # Not async: an async sink in this live pipeline sometimes never finished its
        # READY->PAUSED preroll, which held the whole pipeline in PAUSED (no output).
        sink = make("rtmp2sink", location=location, timeout=5, async_=False)
        return mux, [mux, sink], {"audio": "audio", "video": "video"}
    if kind == "mp4":
        mux = make("mp4mux", fragment_duration=1000, streamable=True)
    elif kind == "mkv":
        mux = make("matroskamux", streamable=True)
    else:
        mux = make("webmmux", streamable=True)
    return mux, [mux, filesink(location)], {"audio": "audio_%u", "video": "video_%u"}


def _video_chain(
    kind: OutputKind, fps: int, video_kbps: int
) -> tuple[Gst.Element, list[Gst.Element]]:
    """(the encoder, raw video in -> encoded video out): VP8 for webm, H264 otherwise."""
    convert = make("videoconvert")
    if kind == "webm":
        encoder = make(
            "vp8enc", deadline=1, cpu_used=8, threads=2, end_usage=1,
            target_bitrate=video_kbps * 1000, keyframe_max_dist=fps * 2,
        )  # fmt: skip
        return encoder, [convert, encoder, queue()]
    encoder = make(
        "x264enc", tune="zerolatency", speed_preset="veryfast", bitrate=video_kbps,
        key_int_max=fps * 2, bframes=0,
    )  # fmt: skip
    profile = make("capsfilter", caps=caps("video/x-h264,profile=main"))
    return encoder, [convert, encoder, profile, make("h264parse"), queue()]


def _audio_chain(kind: OutputKind) -> tuple[Gst.Element, list[Gst.Element]]:
    """(the encoder, raw audio in -> encoded audio out): Opus for mkv and webm, AAC otherwise."""
    convert, resample = make("audioconvert"), make("audioresample")
    if kind in ("mkv", "webm"):
        encoder = make("opusenc", bitrate=64000)
        return encoder, [convert, resample, encoder, queue()]
    encoder = make("avenc_aac", bitrate=128000)
    return encoder, [convert, resample, encoder, make("aacparse"), queue()]
