"""Check media by its content: decode it and measure.

ffprobe gives container facts (codec, duration, frame count, resolution);
ffmpeg decodes audio to float PCM that numpy measures (tone frequency).
A file's size proves nothing, so nothing here looks at it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class StreamInfo:
    codec_type: str
    codec_name: str
    duration: float | None
    width: int | None
    height: int | None
    frames: int | None
    start_time: float | None


def _ffprobe() -> str:
    path = shutil.which("ffprobe")
    if path is None:
        raise RuntimeError("ffprobe is missing: apt-get install ffmpeg")
    return path


def probe_streams(path: Path, *, count_frames: bool = False) -> list[StreamInfo]:
    """Every stream of a media file, as ffprobe decodes it."""
    argv = [_ffprobe(), "-v", "error", "-print_format", "json", "-show_streams", "-show_format"]
    if count_frames:
        argv.append("-count_frames")
    argv.append(str(path))
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout
    data = json.loads(out)
    fmt_duration = float(data.get("format", {}).get("duration", "nan"))
    streams = []
    for s in data.get("streams", []):
        duration = float(s["duration"]) if "duration" in s else fmt_duration
        frames = s.get("nb_read_frames") if count_frames else s.get("nb_frames")
        streams.append(
            StreamInfo(
                codec_type=s["codec_type"],
                codec_name=s.get("codec_name", ""),
                duration=None if np.isnan(duration) else duration,
                width=s.get("width"),
                height=s.get("height"),
                frames=int(frames) if frames is not None else None,
                start_time=float(s["start_time"]) if "start_time" in s else None,
            )
        )
    return streams


def decode_audio(
    path: Path, *, rate: int = 48000, timeline: bool = False
) -> npt.NDArray[np.float32]:
    """Decode the first audio stream to mono float32 PCM at `rate`.

    With `timeline`, samples follow the file's timestamps: a gap in them (a
    muted stretch) decodes as silence of its length, as a player renders it.
    """
    argv = ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1"]
    if timeline:
        argv += ["-af", "aresample=async=1:first_pts=0"]
    argv += ["-ar", str(rate), "-f", "f32le", "-"]
    pcm = subprocess.run(argv, check=True, capture_output=True, timeout=120).stdout
    return np.frombuffer(pcm, dtype=np.float32)


def dominant_frequency(samples: npt.NDArray[np.float32], rate: int) -> float:
    """The strongest frequency (Hz) of a signal, with parabolic peak refinement."""
    if samples.size < rate // 10:
        raise ValueError(f"too few samples to measure a frequency: {samples.size}")
    window = np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(samples * window))
    spectrum[0] = 0.0
    k = int(np.argmax(spectrum))
    if 0 < k < spectrum.size - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        k_refined = k + 0.5 * (a - c) / (a - 2 * b + c)
    else:
        k_refined = float(k)
    return float(k_refined * rate / samples.size)


def band_energy_ratio(
    samples: npt.NDArray[np.float32], rate: int, freq: float, width: float = 20.0
) -> float:
    """Share of the signal's energy within +-width Hz of freq (0..1)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size))) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1.0 / rate)
    band = (freqs > freq - width) & (freqs < freq + width)
    total = float(spectrum.sum())
    return float(spectrum[band].sum()) / total if total > 0 else 0.0


def rms(samples: npt.NDArray[np.float32]) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0


def silent_runs(
    pcm: npt.NDArray[np.float32], window: int, level: float = 0.01
) -> list[tuple[int, int]]:
    """[start, end) of each silent stretch of `pcm` (RMS under `level`), in `window`s of
    samples."""
    levels = [rms(pcm[i : i + window]) for i in range(0, len(pcm) - window, window)]
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, quiet in enumerate([*(x < level for x in levels), False]):
        if quiet and start is None:
            start = i
        elif not quiet and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _frame_pcm(frame: Any) -> npt.NDArray[np.float32]:
    pcm = frame.to_ndarray().astype(np.float32) / 32768.0
    channels = len(frame.layout.channels)
    out: npt.NDArray[np.float32] = (
        pcm.reshape(-1, channels).mean(axis=1) if channels > 1 else pcm.reshape(-1)
    )
    return out


async def collect_track_audio(track: object, seconds: float) -> npt.NDArray[np.float32]:
    """Decoded PCM (mono float, 48 kHz) received on an aiortc track for `seconds` of audio."""
    chunks: list[npt.NDArray[np.float32]] = []
    got = 0.0
    async with asyncio.timeout(seconds + 15):
        while got < seconds:
            frame = await track.recv()  # type: ignore[attr-defined]
            chunks.append(_frame_pcm(frame))
            got += frame.samples / frame.sample_rate
    return np.concatenate(chunks)


async def audio_received_within(track: object, seconds: float) -> npt.NDArray[np.float32]:
    """Decoded PCM of whatever frames arrive on an aiortc track in `seconds` of wall time
    (empty when none does: a paused stream sends nothing)."""
    chunks: list[npt.NDArray[np.float32]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            frame = await asyncio.wait_for(track.recv(), left)  # type: ignore[attr-defined]
        except TimeoutError:
            break
        chunks.append(_frame_pcm(frame))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def decode_frame(path: Path, at_s: float, width: int, height: int) -> npt.NDArray[np.uint8]:
    """The video frame shown at `at_s`, decoded to RGB, shape (height, width, 3)."""
    argv = [
        "ffmpeg", "-v", "error", "-ss", f"{at_s:.3f}", "-i", str(path), "-frames:v", "1",
        "-vf", f"scale={width}:{height}", "-pix_fmt", "rgb24", "-f", "rawvideo", "-",
    ]  # fmt: skip
    raw = subprocess.run(argv, check=True, capture_output=True, timeout=60).stdout
    if len(raw) != width * height * 3:
        raise AssertionError(f"no frame at {at_s} s in {path} ({len(raw)} bytes)")
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)


def decode_frames(path: Path, fps: int, width: int, height: int) -> npt.NDArray[np.uint8]:
    """The video resampled to `fps` and scaled, as RGB frames: shape (n, height, width, 3)."""
    argv = [
        "ffmpeg", "-v", "error", "-i", str(path), "-an",
        "-vf", f"fps={fps},scale={width}:{height}", "-pix_fmt", "rgb24", "-f", "rawvideo", "-",
    ]  # fmt: skip
    raw = subprocess.run(argv, check=True, capture_output=True, timeout=120).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)


def _decode_all(path: Path, width: int, height: int) -> npt.NDArray[np.uint8]:
    argv = [
        "ffmpeg", "-v", "error", "-i", str(path), "-an", "-fps_mode", "passthrough",
        "-vf", f"scale={width}:{height}", "-pix_fmt", "rgb24", "-f", "rawvideo", "-",
    ]  # fmt: skip
    raw = subprocess.run(argv, check=True, capture_output=True, timeout=120).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)


@dataclass(frozen=True)
class PatternCheck:
    """What the decoded frames of a PatternVideoTrack recording show."""

    numbers: list[int]  # the frame counter read from every decoded frame, in order
    in_order: bool  # counters strictly increase: no frame repeated or out of order
    consecutive_share: float  # of steps between decoded frames, those of exactly 1
    bar_share: float  # of frames, those whose white bar is where its counter puts it
    background_share: float  # of frames, those whose background is the pattern's dark blue

    @property
    def span(self) -> int:
        return self.numbers[-1] - self.numbers[0] + 1 if self.numbers else 0


def check_pattern_video(path: Path, width: int = 320, height: int = 240) -> PatternCheck:
    """Decode every frame (no resampling) and read the pattern PatternVideoTrack draws,
    written out here again rather than imported: 16 cells of 16 px in the top 16 rows are
    the bits of the frame number n (yellow = 1), a 16 px white bar at x = 4n mod width
    below them, the rest (0, 0, 64)."""
    frames = _decode_all(path, width, height)
    numbers, bars, backgrounds = [], 0, 0
    for img in frames:
        n = sum(
            1 << bit for bit in range(16) if img[2:14, bit * 16 + 2 : bit * 16 + 14].mean() > 128
        )
        numbers.append(n)
        x = (n * 4) % width
        lo, hi = x + 2, min(width, x + 14)  # inside the bar, clear of its blurred edges
        if img[40:200, lo:hi].mean() > 200:
            bars += 1
        bx = (x + width // 2) % (width - 16)  # at least 144 px from the bar
        patch = img[40:200, bx + 2 : bx + 10].reshape(-1, 3).mean(axis=0)
        if patch[0] < 40 and patch[1] < 40 and 30 < patch[2] < 100:
            backgrounds += 1
    steps = np.diff(numbers) if len(numbers) > 1 else np.zeros(0, dtype=np.int64)
    count = max(1, len(numbers))
    return PatternCheck(
        numbers=numbers,
        in_order=bool(np.all(steps > 0)),
        consecutive_share=float(np.mean(steps == 1)) if steps.size else 0.0,
        bar_share=bars / count,
        background_share=backgrounds / count,
    )


@dataclass(frozen=True)
class BallCheck:
    """What the decoded frames of GStreamer's videotestsrc pattern=ball show."""

    frames: int
    ball_share: float  # of frames, those with one small bright ball on a black picture
    moving_share: float  # of steps between frames, those in which the ball moved


def check_ball_video(path: Path, width: int = 320, height: int = 240) -> BallCheck:
    """Decode every frame and find videotestsrc's ball: a white disc (0.3 % to 10 % of the
    picture) on black, whose centre moves from frame to frame."""
    frames = _decode_all(path, width, height)
    centres: list[tuple[float, float] | None] = []
    for img in frames:
        grey = img.mean(axis=2)
        bright = grey > 128
        share = float(bright.mean())
        dark = float(np.median(grey)) < 30
        if dark and 0.003 <= share <= 0.10:
            ys, xs = np.nonzero(bright)
            centres.append((float(xs.mean()), float(ys.mean())))
        else:
            centres.append(None)
    moved = [
        a is not None and b is not None and np.hypot(a[0] - b[0], a[1] - b[1]) >= 0.5
        for a, b in itertools.pairwise(centres)
    ]
    count = max(1, len(centres))
    return BallCheck(
        frames=len(centres),
        ball_share=sum(c is not None for c in centres) / count,
        moving_share=float(np.mean(moved)) if moved else 0.0,
    )


def key_frame_times(path: Path) -> list[float]:
    """Presentation times (s, from the stream's first frame) of the video's key frames."""
    argv = [
        _ffprobe(), "-v", "error", "-select_streams", "v:0", "-show_entries",
        "frame=key_frame,pts_time,best_effort_timestamp_time", "-of", "json", str(path),
    ]  # fmt: skip
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout
    frames = json.loads(out).get("frames", [])
    times = [float(f.get("pts_time", f.get("best_effort_timestamp_time", "nan"))) for f in frames]
    first = min(t for t in times if not np.isnan(t))
    return [t - first for f, t in zip(frames, times, strict=True) if f.get("key_frame") == 1]


def dominant_color(frame: npt.NDArray[np.uint8], x: int, y: int, r: int = 10) -> str:
    """'red' / 'green' / 'blue' / 'black' / 'other' for the patch around (x, y)."""
    patch = frame[max(0, y - r) : y + r, max(0, x - r) : x + r].reshape(-1, 3).mean(axis=0)
    red, green, blue = (float(c) for c in patch)
    if max(red, green, blue) < 40:
        return "black"
    for name, value, others in (
        ("red", red, (green, blue)),
        ("green", green, (red, blue)),
        ("blue", blue, (red, green)),
    ):
        if value > 120 and all(o < value / 2 for o in others):
            return name
    return "other"
