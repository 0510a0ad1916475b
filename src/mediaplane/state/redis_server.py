"""A private redis-server child process, for `mediaplane up` without REDIS_URL and for tests."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
from pathlib import Path

import redis.asyncio as aioredis


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        port: int,
        data_dir: Path,
        host: str = "127.0.0.1",
        password: str | None = None,
    ) -> None:
        self.host = host
        self.password = password
        self._proc = proc
        self.port = port
        self.data_dir = data_dir

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def pid(self) -> int:
        return self._proc.pid

    @classmethod
    async def start(
        cls,
        data_dir: Path,
        *,
        port: int | None = None,
        persist: bool = True,
        bind: str = "127.0.0.1",
        password: str | None = None,
    ) -> RedisServer:
        """`bind`: one address. The server always has a password (`requirepass`, in `url`):
        another local user or a page's request forgery cannot read or write our state, on
        loopback or off it. Protected mode stays on. `password`: the one clients already
        hold, when this is a restart of a server they used; otherwise a new random one."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: apt-get install redis-server")
        port = port or free_tcp_port(bind)
        password = password or secrets.token_hex(16)
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--bind", bind,
            "--port", str(port),
            "--dir", str(data_dir),
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        # AOF keeps state across a restart of the private server.
        argv += ["--appendonly", "yes"] if persist else ["--appendonly", "no", "--save", ""]
        argv += ["--requirepass", password]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            # Its own session: a Ctrl-C in the terminal reaches us, and we stop it last.
            start_new_session=True,
        )
        server = cls(proc, port, data_dir, bind, password)
        await server._wait_ready()
        return server

    async def _wait_ready(self, timeout: float = 10.0) -> None:
        client = aioredis.Redis(
            host=self.host, port=self.port, password=self.password, socket_connect_timeout=0.5
        )
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._proc.returncode is not None:
                        err = b""
                        if self._proc.stderr is not None:
                            err = await self._proc.stderr.read()
                        raise RuntimeError(f"redis-server exited: {err.decode()[-500:]}")
                    with contextlib.suppress(aioredis.ConnectionError, OSError):
                        if await client.ping():
                            return
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()

    async def kill(self) -> None:
        """Die abruptly (tests of Redis restarts)."""
        if self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
