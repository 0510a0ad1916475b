"""Which element depayloads, parses and decodes each RTP encoding the SFU sends."""

from __future__ import annotations

DEPAY = {"OPUS": "rtpopusdepay", "VP8": "rtpvp8depay", "VP9": "rtpvp9depay", "H264": "rtph264depay"}
PARSE = {"OPUS": "opusparse", "H264": "h264parse"}
DECODE = {"OPUS": "opusdec", "VP8": "vp8dec", "VP9": "vp9dec", "H264": "avdec_h264"}

DECODE_ELEMENTS = (*DECODE.values(), "audioconvert", "audioresample", "videoconvert", "capsfilter")
"""What decoding RTP to raw audio and video makes (stream, composite)."""
