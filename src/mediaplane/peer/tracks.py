"""Synthetic media tracks for tests, bots and the load tester."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack


class _Paced:
    """Real-time pacing: frame n is released at start + n * period."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._start: float | None = None
        self.index = 0

    async def next(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self.index += 1
            delay = self._start + self.index * self._period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return self.index


class ToneTrack(MediaStreamTrack):
    """A sine tone: 48 kHz mono, 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self, freq: float = 440.0, amplitude: float = 0.3, rate: int = 48000) -> None:
        super().__init__()
        self.freq, self.amplitude, self.rate = freq, amplitude, rate
        self.samples = rate // 50
        self._pace = _Paced(self.samples / rate)

    async def recv(self) -> av.AudioFrame:
        n = await self._pace.next()
        pts = n * self.samples
        t = (np.arange(self.samples) + pts) / self.rate
        pcm = (self.amplitude * np.sin(2 * np.pi * self.freq * t) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, self.rate)
        return frame


class PatternVideoTrack(MediaStreamTrack):
    """A moving bar plus a binary frame counter in the top row (readable after decoding)."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._pace = _Paced(1 / fps)

    async def recv(self) -> av.VideoFrame:
        n = await self._pace.next()
        img = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        img[:, :, 2] = 64
        x = (n * 4) % self.width
        # The bar stays below the counter row: over it, it read as set bits (frame 56's
        # bar at x=224 made bit 14 read 1: 20536, not 56).
        img[16:, x : x + 16] = (255, 255, 255)
        # 16 cells of 16 px in the top 16 rows: bit i of the frame number.
        for bit in range(16):
            if n >> bit & 1:
                img[:16, bit * 16 : bit * 16 + 16] = (255, 255, 0)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = n * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        return frame


def read_frame_counter(rgb: np.ndarray) -> int:
    """The frame number drawn by PatternVideoTrack, from a decoded rgb24 frame."""
    value = 0
    for bit in range(16):
        cell = rgb[2:14, bit * 16 + 2 : bit * 16 + 14]
        if cell.mean() > 128:
            value |= 1 << bit
    return value


class ColorVideoTrack(MediaStreamTrack):
    """A solid colour (0xRRGGBB): recognisable as a tile after compositing and decoding."""

    kind = "video"

    def __init__(self, color: int, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.rgb = ((color >> 16) & 255, (color >> 8) & 255, color & 255)
        self._pace = _Paced(1 / fps)

    async def recv(self) -> av.VideoFrame:
        n = await self._pace.next()
        img = np.empty((self.height, self.width, 3), dtype=np.uint8)
        img[:, :] = self.rgb
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = n * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        return frame
