"""The worker process: `python -m mediaplane.media.worker <config.json>`.

Why our own program on GStreamer's Python bindings instead of gst-launch-1.0:
the manager needs the pipeline's bus (error text with debug info, EOS), the
first RTP packet of each stream (a pad probe), RTP session statistics and the
ports udpsrc really bound, as structured data. gst-launch offers only text on
stderr. This program builds the pipeline element by element from a typed
config (no pipeline string, no client string) and speaks JSON lines on stdout
(`WorkerEvent` in wire/media.py):

    {"event": "ready", "ports": {"audio": {"rtp": 40000, "rtcp": 40001}}, "pid": 0}
    {"event": "first-packet", "stream": "audio", "at": 1700000000.1}
    {"event": "stats", "packets_received": 250, "packets_lost": 0, "position_s": 5.0}
    {"event": "error", "message": "...", "debug": "..."}
    {"event": "eos"}
    {"event": "loop", "count": 2}                      (inject with loop, kinds/inject.py)

and reads `WorkerCommand` lines on stdin (a composite's add-input / remove-input).
What a job kind builds and does is its Kind's (kinds/<kind>.py); nothing here
depends on the kind.

SIGINT sends EOS (the muxer finishes the file, then the process exits 0; an
injection has no file and ends at once, also exit 0);
SIGTERM stops at once (the container is crash-safe, so the file still plays).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from mediaplane.media.worker import outbound
from mediaplane.media.worker.context import JobContext
from mediaplane.media.worker.events import emit
from mediaplane.media.worker.gst import GLib, Gst
from mediaplane.media.worker.kinds import KINDS
from mediaplane.wire.media import (
    WORKER_COMMAND,
    WORKER_CONFIG,
    AnyWorkerConfig,
    Eos,
    InputError,
    PipelineError,
    Stats,
)

STATS_INTERVAL_MS = 1000


class Worker:
    def __init__(self, config: AnyWorkerConfig) -> None:
        self.job = JobContext(config)
        self.kind = KINDS[config.kind](self.job, config)
        self.job.public_error = self.kind.public_error
        self.command_buffer = b""

    def run(self) -> int:
        job = self.job
        self.kind.build()
        bus = job.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)
        if job.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            # The bus carries the reason (e.g. a file that cannot be opened).
            msg = bus.timed_pop_filtered(Gst.SECOND, Gst.MessageType.ERROR)
            if msg is not None:
                self._report(msg)
            else:
                self.job.report("the pipeline refused to start")
            return 2
        self.kind.started()
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, self._interrupt)
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, self._terminate)
        GLib.timeout_add(STATS_INTERVAL_MS, self.stats)
        GLib.io_add_watch(
            sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP, self._commands
        )
        job.loop.run()
        self.stats()
        job.pipeline.set_state(Gst.State.NULL)
        return job.exit_code

    def stats(self) -> bool:
        received, lost = self.job.rtp.counts()
        position_s = self.kind.position_s()
        emit(Stats(packets_received=received, packets_lost=lost, position_s=position_s))
        return True

    def on_message(self, _bus: Gst.Bus, msg: Gst.Message) -> None:
        if self.kind.on_message(msg):
            return
        if msg.type == Gst.MessageType.EOS:
            self.stats()  # the final position: a fast transcode may end between two ticks
            emit(Eos())
            self.job.loop.quit()
        elif msg.type == Gst.MessageType.ERROR:
            self._report(msg)
            self.job.exit_code = 2
            self.job.loop.quit()

    def _report(self, msg: Gst.Message) -> None:
        err, debug = msg.parse_error()
        element = msg.src.get_name()
        self.job.report(f"{element}: {err.message}", debug or "", element)

    def _interrupt(self) -> bool:
        """SIGINT: stop as the kind does (EOS, so the file is finished)."""
        if not self.job.stopping:
            self.job.stopping = True
            self.kind.stop()
        return False

    def _terminate(self) -> bool:
        self.job.exit_code = 143
        self.job.loop.quit()
        return False

    def _commands(self, fd: int, _condition: GLib.IOCondition) -> bool:
        """Command lines from the manager on stdin."""
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            return False  # the manager is gone; keep running until signalled
        self.command_buffer += chunk
        *lines, self.command_buffer = self.command_buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._command(line.decode(errors="replace"))
        return True

    def _command(self, line: str) -> None:
        """One command, answered with one event."""
        ident = ""
        try:
            raw = json.loads(line)
            ident = _input_of(raw)
            emit(self.kind.command(WORKER_COMMAND.validate_python(raw)))
        except Exception as e:
            # The command protocol's one reply point: an exception escaping here would
            # remove the stdin watch, and every later command would time out.
            emit(InputError(input=ident, message=str(e) or type(e).__name__))


def _input_of(raw: object) -> str:
    """The input a command is about, read before it is validated (for its error reply)."""
    if not isinstance(raw, dict):
        return ""
    spec = raw.get("input")
    ident = spec.get("id", "") if isinstance(spec, dict) else raw.get("id", "")
    return str(ident)


def main() -> int:
    config = WORKER_CONFIG.validate_json(Path(sys.argv[1]).read_text())
    try:
        outbound.install(config.outbound_allow)  # before anything can connect
        return Worker(config).run()
    except RuntimeError as e:
        emit(PipelineError(message=str(e)))
        return 2
    except Exception as e:  # a bug while building: say what it was, exit non-zero
        emit(PipelineError(message=f"pipeline build failed: {type(e).__name__}: {e}"))
        return 2
