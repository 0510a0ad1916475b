"""Inputs, replay, the ffmpeg reference and content checks for benchmarks/composite.py.

Three participants are pre-encoded once to Matroska files (VP8 640x360 30 fps:
a coloured picture with a moving ball and a scrolling SMPTE band, plus an Opus
tone), then replayed as RTP in real time by one gst-launch process, so the
sender's CPU is the same for both systems and outside the measurement.
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.mediacheck import (
    band_energy_ratio,
    decode_audio,
    decode_frame,
    dominant_color,
    probe_streams,
)

WIDTH, HEIGHT, FPS = 1280, 720, 30  # the composite
TILE_W, TILE_H = 640, 360  # each participant's camera
VIDEO_KBPS = 2500  # CompositeRequest's default
OPUS_BPS = 64000  # gst_parts.encoded_output's opusenc
FRAME_PX = 6  # composite.FRAME_PX: the margin kept for the active speaker's frame
AUDIO_PT, VIDEO_PT = 100, 101


@dataclass(frozen=True)
class Person:
    name: str
    tone_hz: float
    color: int  # 0xRRGGBB
    color_name: str


PEOPLE = (
    Person("alice", 330.0, 0xFF0000, "red"),
    Person("bob", 660.0, 0x00FF00, "green"),
    Person("carol", 990.0, 0x0000FF, "blue"),
)


# inputs ------------------------------------------------------------------------------
def encode_argv(person: Person, seconds: float, out: Path) -> list[str]:
    """gst-launch argv (no shell): VP8 + Opus of one participant into a Matroska file."""
    frames = int(seconds * FPS)
    band_h = TILE_H // 3
    return [
        "videotestsrc", "pattern=ball", f"background-color={0xFF000000 | person.color}",
        f"num-buffers={frames}", "!",
        f"video/x-raw,width={TILE_W},height={TILE_H},framerate={FPS}/1", "!",
        "compositor", "name=m", f"sink_1::ypos={TILE_H - band_h}", "!",
        f"video/x-raw,width={TILE_W},height={TILE_H},framerate={FPS}/1", "!",
        "vp8enc", "deadline=1", "cpu-used=8", "end-usage=cbr", "target-bitrate=600000",
        f"keyframe-max-dist={FPS}", "threads=2", "!", "queue", "!",
        "matroskamux", "name=mux", "!", "filesink", f"location={out}",
        "videotestsrc", "pattern=smpte", "horizontal-speed=8", f"num-buffers={frames}", "!",
        f"video/x-raw,width={TILE_W},height={band_h},framerate={FPS}/1", "!", "m.",
        "audiotestsrc", "wave=sine", f"freq={person.tone_hz}", "volume=0.3",
        "samplesperbuffer=960", f"num-buffers={int(seconds * 50)}", "!",
        "audio/x-raw,rate=48000,channels=2", "!", "audioconvert", "!",
        "opusenc", "frame-size=20", "bitrate=48000", "!", "queue", "!", "mux.",
    ]  # fmt: skip


def replay_argv(files: list[Path], ports: list[tuple[int, int]]) -> list[str]:
    """One gst-launch (one clock): each file's VP8 and Opus as RTP, paced by timestamps.

    ports[i] = (audio RTP port, video RTP port) of participant i.
    """
    argv: list[str] = []
    for i, (path, (audio_port, video_port)) in enumerate(zip(files, ports, strict=True)):
        d = f"d{i}"
        argv += [
            "filesrc", f"location={path}", "!", "matroskademux", f"name={d}",
            f"{d}.video_0", "!", "queue", "!",
            "rtpvp8pay", f"pt={VIDEO_PT}", f"ssrc={1000 + 10 * i + 2}", "mtu=1200", "!",
            "udpsink", "host=127.0.0.1", f"port={video_port}", "sync=true",
            f"{d}.audio_0", "!", "queue", "!",
            "rtpopuspay", f"pt={AUDIO_PT}", f"ssrc={1000 + 10 * i + 1}", "!",
            "udpsink", "host=127.0.0.1", f"port={audio_port}", "sync=true",
        ]  # fmt: skip
    return argv


# the layout (composite.Composite.layout, replicated; the content check proves it matches)
def grid(n: int, aspect: float) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of each tile in join order: a grid, the last row centred."""
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cw, ch = WIDTH // cols, HEIGHT // rows
    tiles = []
    for index in range(n):
        row, col = divmod(index, cols)
        in_row = min(cols, n - row * cols)
        x0, y0 = col * cw + (cols - in_row) * cw // 2, row * ch
        iw, ih = cw - 2 * FRAME_PX, ch - 2 * FRAME_PX
        if iw / ih > aspect:
            iw = int(ih * aspect)
        else:
            ih = int(iw / aspect)
        tiles.append((x0 + (cw - iw) // 2, y0 + (ch - ih) // 2, iw, ih))
    return tiles


# the reference: ffmpeg -------------------------------------------------------------------
def sdp(ports: list[tuple[int, int]]) -> str:
    """One SDP, per participant an Opus then a VP8 m-line (ffmpeg listens on port and port+1)."""
    text = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=composite\nc=IN IP4 127.0.0.1\nt=0 0\n"
    for audio_port, video_port in ports:
        text += (
            f"m=audio {audio_port} RTP/AVP {AUDIO_PT}\na=rtpmap:{AUDIO_PT} opus/48000/2\n"
            f"m=video {video_port} RTP/AVP {VIDEO_PT}\na=rtpmap:{VIDEO_PT} VP8/90000\n"
        )
    return text


def ffmpeg_argv(sdp_path: Path, out: Path, speaker: int, *, vp8_decoder: str = "") -> list[str]:
    """amix + xstack of the same grid, names drawn, the speaker's frame, same encoders.

    x264: x264enc's tune=zerolatency speed-preset=veryfast bitrate=2500 key-int-max=60
    bframes=0, main profile; x264enc's default pass=cbr is ABR with a VBV of the
    bitrate and vbv-buf-capacity=600 ms. Opus: opusenc bitrate=64000, CBR (its
    default bitrate-type), 20 ms frames. Container: Matroska, as the mkv format.
    `vp8_decoder`: "libvpx" decodes with the library our vp8dec uses; "" = ffmpeg's own.
    """
    tiles = grid(len(PEOPLE), TILE_W / TILE_H)
    chains, labels = [], []
    for i, (person, (_, _, w, h)) in enumerate(zip(PEOPLE, tiles, strict=True)):
        chains.append(
            f"[0:v:{i}]scale={w}:{h},drawtext=text={person.name.title()}:x=4:y=4:"
            f"font=Sans:fontsize=19:fontcolor=white:box=1:boxcolor=black@0.5[t{i}]"
        )
        labels.append(f"[t{i}]")
    layout = "|".join(f"{x}_{y}" for x, y, _, _ in tiles)
    sx, sy, sw, sh = tiles[speaker]
    chains.append(
        f"{''.join(labels)}xstack=inputs={len(tiles)}:layout={layout}:fill=black,"
        f"pad={WIDTH}:{HEIGHT}:0:0:black,"
        f"drawbox=x={sx - FRAME_PX}:y={sy - FRAME_PX}:w={sw + 2 * FRAME_PX}:"
        f"h={sh + 2 * FRAME_PX}:color=0xFFC800:t={FRAME_PX},"
        f"fps={FPS},format=yuv420p[v]"
    )
    audios = "".join(f"[0:a:{i}]" for i in range(len(PEOPLE)))
    chains.append(f"{audios}amix=inputs={len(PEOPLE)}[a]")
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
        "-protocol_whitelist", "file,udp,rtp", "-thread_queue_size", "1024",
        *(["-c:v", vp8_decoder] if vp8_decoder else []), "-i", str(sdp_path),
        "-filter_complex", ";".join(chains), "-map", "[v]", "-map", "[a]",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
        "-b:v", f"{VIDEO_KBPS}k", "-maxrate", f"{VIDEO_KBPS}k",
        "-bufsize", f"{VIDEO_KBPS * 600 // 1000}k", "-g", str(2 * FPS), "-bf", "0",
        "-profile:v", "main",
        "-c:a", "libopus", "-b:a", str(OPUS_BPS), "-vbr", "off", "-frame_duration", "20",
        "-ar", "48000", "-ac", "2",
        "-f", "matroska", "-y", str(out),
    ]  # fmt: skip


# content checks ----------------------------------------------------------------------------
@dataclass
class Checked:
    duration_s: float
    frames: int
    fps: float
    tone_shares: dict[str, float]
    tiles: list[str]
    x264_options: dict[str, str]

    def as_dict(self) -> dict[str, object]:
        return {
            "duration_s": round(self.duration_s, 2),
            "frames": self.frames,
            "fps": round(self.fps, 2),
            "tone_shares": {k: round(v, 3) for k, v in self.tone_shares.items()},
            "tiles": self.tiles,
        }


def frame_times(path: Path) -> list[float]:
    """Presentation times (s) of every decoded video frame."""
    argv = [
        "ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
        "-of", "csv=p=0", str(path),
    ]  # fmt: skip
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=300).stdout
    values = (v.strip(",") for v in out.split())
    return sorted(float(v) for v in values if v not in ("", "N/A"))


def x264_options(path: Path) -> dict[str, str]:
    """The settings x264 wrote into the stream's SEI ("x264 - core N - ... options: ...")."""
    with path.open("rb") as f:
        head = f.read(4 * 2**20)
    m = re.search(rb"x264 - core \d+.*? - options: ([^\x00]+?)\x00", head, re.S)
    if m is None:
        raise AssertionError(f"{path}: no x264 settings SEI in the first 4 MiB")
    pairs = (kv.split("=", 1) for kv in m.group(1).decode(errors="replace").split())
    return {kv[0]: kv[1] for kv in pairs if len(kv) == 2}


def check_output(path: Path, min_seconds: float) -> Checked:
    """Decode the composite: H264 1280x720 at ~30 fps, Opus, the 3 tones and the 3 tiles."""
    streams = {s.codec_type: s for s in probe_streams(path)}
    video, audio = streams.get("video"), streams.get("audio")
    if video is None or audio is None:
        raise AssertionError(f"{path}: wants a video and an audio stream, has {list(streams)}")
    if (video.codec_name, audio.codec_name) != ("h264", "opus"):
        raise AssertionError(f"{path}: codecs {video.codec_name}/{audio.codec_name}")
    if (video.width, video.height) != (WIDTH, HEIGHT):
        raise AssertionError(f"{path}: {video.width}x{video.height}")
    # A streamable Matroska file has no duration: time the decoded frames instead.
    times = frame_times(path)
    frames = len(times)
    duration = times[-1] - times[0] + 1 / FPS if frames > 1 else 0.0
    fps = (frames - 1) / (times[-1] - times[0]) if frames > 1 else 0.0
    if duration < min_seconds or abs(fps - FPS) > 1.5:
        raise AssertionError(f"{path}: {duration:.1f} s, {frames} frames ({fps:.1f} fps)")

    pcm = decode_audio(path)
    rate = 48000
    mid = duration / 2
    window = pcm[int((mid - 2) * rate) : int((mid + 2) * rate)]
    shares = {p.name: band_energy_ratio(window, rate, p.tone_hz) for p in PEOPLE}
    if not all(s > 0.1 for s in shares.values()):
        raise AssertionError(f"{path}: tone shares {shares}")

    frame = decode_frame(path, mid, WIDTH, HEIGHT)
    seen = []
    for x, y, w, h in grid(len(PEOPLE), TILE_W / TILE_H):
        # The upper part of a tile is the participant's colour (a small ball moves on it;
        # the name is top left, the SMPTE band at the bottom): majority of 5 patches.
        spots = [(x + w * fx, y + h * fy) for fx, fy in
                 ((0.3, 0.25), (0.7, 0.25), (0.5, 0.4), (0.2, 0.5), (0.8, 0.5))]  # fmt: skip
        names = [dominant_color(frame, int(sx), int(sy), r=8) for sx, sy in spots]
        seen.append(max(set(names), key=names.count))
    expected = [p.color_name for p in PEOPLE]
    beside = dominant_color(frame, 60, HEIGHT - 60)  # beside the centred last row
    if seen != expected or beside != "black":
        raise AssertionError(f"{path}: tiles {seen} (want {expected}), beside {beside}")
    return Checked(duration, frames, fps, shares, seen, x264_options(path))


def option_diff(a: dict[str, str], b: dict[str, str]) -> dict[str, tuple[str, str]]:
    keys = sorted(set(a) | set(b))
    return {k: (a.get(k, "-"), b.get(k, "-")) for k in keys if a.get(k) != b.get(k)}
