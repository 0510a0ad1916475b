"""Media sources for injection tests: A/V files, an HTTP server, an RTSP server, an RTMP publisher.

Everything is real and on loopback: ffmpeg makes the files and publishes RTMP,
uvicorn serves files over HTTP, GStreamer's RTSP server (gir1.2-gst-rtsp-server-1.0)
serves RTSP from a child process. argv lists only, no shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from mediaplane.state.redis_server import free_tcp_port

TONE_HZ = 1000.0
SIZE = (320, 240)
FPS = 30


def _av_inputs(seconds: float | None, freq: float) -> list[str]:
    duration = f":duration={seconds}" if seconds is not None else ""
    w, h = SIZE
    return [
        "-f", "lavfi", "-i", f"smptebars=size={w}x{h}:rate={FPS}{duration}",
        "-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=48000{duration}",
    ]  # fmt: skip


def make_av_file(path: Path, seconds: float, freq: float = TONE_HZ) -> Path:
    """An MP4 (H264 + AAC): SMPTE colour bars and a sine tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        "ffmpeg", "-v", "error", "-y", *_av_inputs(seconds, freq),
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(FPS), "-c:a", "aac", "-shortest",
        str(path),
    ]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return path


def make_hls(folder: Path, seconds: float, freq: float = TONE_HZ) -> Path:
    """A VOD HLS stream (1 s MPEG-TS segments); returns the playlist."""
    folder.mkdir(parents=True, exist_ok=True)
    playlist = folder / "index.m3u8"
    argv = [
        "ffmpeg", "-v", "error", "-y", *_av_inputs(seconds, freq),
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(FPS), "-c:a", "aac", "-shortest",
        "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", str(playlist),
    ]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return playlist


@dataclass
class HttpFiles:
    """A folder served over HTTP by uvicorn (in this event loop)."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    @classmethod
    @contextlib.asynccontextmanager
    async def serving(
        cls, folder: Path, redirects: dict[str, str] | None = None
    ) -> AsyncIterator[HttpFiles]:
        """`redirects`: path -> where a 302 sends the client (absolute or a path)."""
        port = free_tcp_port()
        routes = [
            Route(path, lambda _req, to=to: RedirectResponse(to, status_code=302))
            for path, to in (redirects or {}).items()
        ]
        app = Starlette(routes=routes)
        app.mount("/", StaticFiles(directory=folder))
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
                await asyncio.sleep(0.02)
        try:
            yield cls(server, task, port)
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def silent_tcp_server() -> AsyncIterator[int]:
    """Accepts connections and never answers: a source that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


@dataclass
class Child:
    proc: asyncio.subprocess.Process

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def publish_rtmp(url: str, freq: float = TONE_HZ) -> Child:
    """ffmpeg publishes a live tone + colour bars (H264 + AAC in FLV) to `url`."""
    argv = [
        "ffmpeg", "-v", "error", "-re", *_av_inputs(None, freq),
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", str(FPS),
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "44100", "-f", "flv", url,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return Child(proc)


def rtsp_server_available() -> bool:
    probe = [
        sys.executable, "-c",
        "import gi; gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import GstRtspServer",
    ]  # fmt: skip
    return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


async def start_rtsp_server(freq: float = TONE_HZ) -> tuple[Child, str]:
    """GStreamer's RTSP server with a live tone (Opus) + colour bars (VP8) at /test."""
    port = free_tcp_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.rtsp_server", str(port), str(freq),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with asyncio.timeout(15):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the RTSP server exited with {proc.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
    return Child(proc), f"rtsp://127.0.0.1:{port}/test"
