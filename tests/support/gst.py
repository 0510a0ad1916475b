"""Real GStreamer processes for tests: RTP senders and receivers (argv lists, no shell)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

GST_LAUNCH = "gst-launch-1.0"


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port free right now (a small race with other binders is accepted in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class GstProcess:
    proc: asyncio.subprocess.Process
    argv: list[str]

    @classmethod
    async def start(cls, *elements: str) -> GstProcess:
        # -e: on SIGINT send EOS so muxers finish their files.
        argv = [GST_LAUNCH, "-q", "-e", *elements]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        return cls(proc, argv)

    async def wait(self, timeout: float) -> int:
        await asyncio.wait_for(self.proc.wait(), timeout)
        rc = self.proc.returncode
        assert rc is not None
        if rc != 0:
            _, err = await self.proc.communicate()
            raise AssertionError(f"{' '.join(self.argv)} exited {rc}: {err.decode()[-2000:]}")
        return rc

    async def stop(self, timeout: float = 10.0) -> int:
        """EOS via SIGINT, then wait; kill if it does not finish in time."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return await self.wait(timeout)
        finally:
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


def opus_sender(port: int, *, freq: float, seconds: float, pt: int, ssrc: int) -> list[str]:
    buffers = int(seconds * 50)  # 20 ms buffers
    return [
        "audiotestsrc", "is-live=true", "wave=sine", f"freq={freq}", "samplesperbuffer=960",
        f"num-buffers={buffers}", "!", "audio/x-raw,rate=48000,channels=2", "!",
        "audioconvert", "!", "opusenc", "frame-size=20", "!",
        "rtpopuspay", f"pt={pt}", f"ssrc={ssrc}", "!",
        "udpsink", "host=127.0.0.1", f"port={port}", "sync=false",
    ]  # fmt: skip


def opus_ogg_receiver(port: int, *, pt: int, out: Path) -> list[str]:
    caps = f"application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload={pt}"
    return [
        "udpsrc", "address=127.0.0.1", f"port={port}", f"caps={caps}", "!",
        "rtpjitterbuffer", "latency=100", "!", "rtpopusdepay", "!", "opusparse", "!",
        "oggmux", "!", "filesink", f"location={out}",
    ]  # fmt: skip


def vp8_sender(
    port: int, *, seconds: float, fps: int, width: int, height: int, pt: int, ssrc: int
) -> list[str]:
    return [
        "videotestsrc", "is-live=true", "pattern=ball", f"num-buffers={int(seconds * fps)}", "!",
        f"video/x-raw,width={width},height={height},framerate={fps}/1", "!",
        "vp8enc", "deadline=1", "cpu-used=8", f"keyframe-max-dist={fps}", "!",
        "rtpvp8pay", f"pt={pt}", f"ssrc={ssrc}", "!",
        "udpsink", "host=127.0.0.1", f"port={port}", "sync=false",
    ]  # fmt: skip


def vp8_webm_receiver(port: int, *, pt: int, out: Path) -> list[str]:
    caps = f"application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload={pt}"
    return [
        "udpsrc", "address=127.0.0.1", f"port={port}", f"caps={caps}", "!",
        "rtpjitterbuffer", "latency=100", "!", "rtpvp8depay", "!",
        "webmmux", "!", "filesink", f"location={out}",
    ]  # fmt: skip


def av_sender(
    audio_port: int,
    video_port: int,
    *,
    seconds: float,
    freq: float = 440.0,
    fps: int = 30,
    width: int = 320,
    height: int = 240,
) -> list[str]:
    """One pipeline, one clock: Opus (pt 100) and VP8 (pt 101) RTP start together."""
    return [
        "audiotestsrc", "is-live=true", "wave=sine", f"freq={freq}", "samplesperbuffer=960",
        f"num-buffers={int(seconds * 50)}", "!", "audio/x-raw,rate=48000,channels=2", "!",
        "audioconvert", "!", "opusenc", "frame-size=20", "!", "rtpopuspay", "pt=100",
        "ssrc=11111111", "!", "udpsink", "host=127.0.0.1", f"port={audio_port}", "sync=false",
        "videotestsrc", "is-live=true", "pattern=ball", f"num-buffers={int(seconds * fps)}", "!",
        f"video/x-raw,width={width},height={height},framerate={fps}/1", "!",
        "vp8enc", "deadline=1", "cpu-used=8", f"keyframe-max-dist={fps}", "!",
        "rtpvp8pay", "pt=101", "ssrc=22222222", "!",
        "udpsink", "host=127.0.0.1", f"port={video_port}", "sync=false",
    ]  # fmt: skip


def tile_sender(
    audio_port: int,
    video_port: int,
    *,
    seconds: float,
    freq: float,
    color: int,
    ssrc_base: int,
    fps: int = 15,
    width: int = 320,
    height: int = 240,
    volume: float = 0.3,
) -> list[str]:
    """A participant for composites: a tone (Opus pt 100) and a solid colour (VP8 pt 101).

    `color` is 0xRRGGBB; the picture is that colour, so a tile is recognised in the mix.
    """
    return [
        "audiotestsrc", "is-live=true", "wave=sine", f"freq={freq}", f"volume={volume}",
        "samplesperbuffer=960", f"num-buffers={int(seconds * 50)}", "!",
        "audio/x-raw,rate=48000,channels=2", "!", "audioconvert", "!", "opusenc",
        "frame-size=20", "!", "rtpopuspay", "pt=100", f"ssrc={ssrc_base + 1}", "!",
        "udpsink", "host=127.0.0.1", f"port={audio_port}", "sync=false",
        "videotestsrc", "is-live=true", "pattern=solid-color",
        f"foreground-color={0xFF000000 | color}", f"num-buffers={int(seconds * fps)}", "!",
        f"video/x-raw,width={width},height={height},framerate={fps}/1", "!",
        "vp8enc", "deadline=1", "cpu-used=8", f"keyframe-max-dist={fps}", "!",
        "rtpvp8pay", "pt=101", f"ssrc={ssrc_base + 2}", "!",
        "udpsink", "host=127.0.0.1", f"port={video_port}", "sync=false",
    ]  # fmt: skip
