"""A real nginx with the RTMP module (Debian's libnginx-mod-rtmp), on loopback, for tests.

It records every published stream to `<dir>/rec/<stream>.flv`, so a test can
check what the server received (ffprobe, decoded tones) after the publisher
is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from pathlib import Path

from mediaplane.state.redis_server import free_tcp_port

MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")

CONFIG = """\
daemon off;
master_process off;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
load_module {module};
events {{ worker_connections 64; }}
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    application live {{
      live on;
      record all;
      record_path {dir}/rec;
      record_unique off;
      allow publish 127.0.0.1;
      deny publish all;
    }}
  }}
}}
"""


@dataclass
class NginxRtmp:
    proc: asyncio.subprocess.Process
    port: int
    dir: Path

    def url(self, stream: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{stream}"

    def recording(self, stream: str) -> Path:
        return self.dir / "rec" / f"{stream}.flv"

    @classmethod
    async def start(cls, folder: Path) -> NginxRtmp:
        if not MODULE.exists():
            raise RuntimeError(f"{MODULE} is missing: apt-get install nginx libnginx-mod-rtmp")
        (folder / "rec").mkdir(parents=True, exist_ok=True)
        port = free_tcp_port()
        conf = folder / "nginx.conf"
        conf.write_text(CONFIG.format(dir=folder, module=MODULE, port=port))
        proc = await asyncio.create_subprocess_exec(
            "nginx", "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        server = cls(proc, port, folder)
        async with asyncio.timeout(10):
            while True:
                if proc.returncode is not None:
                    err = await proc.stderr.read() if proc.stderr else b""
                    raise RuntimeError(f"nginx exited {proc.returncode}: {err.decode()[-500:]}")
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    return server
                await asyncio.sleep(0.05)

    async def wait_recorded(self, stream: str, timeout: float = 15.0) -> Path:
        """The stream's recording once nginx has closed it (the publisher disconnected)."""
        path = self.recording(stream)
        log = self.dir / "error.log"
        async with asyncio.timeout(timeout):
            while True:
                text = log.read_text(errors="replace") if log.exists() else ""
                published = text.find(f"publish: name='{stream}'")
                if path.exists() and published >= 0 and "disconnect" in text[published:]:
                    return path
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
