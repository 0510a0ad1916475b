"""The one interface every job kind implements; main.py runs it without knowing the kind.

A kind (kinds/<kind>.py, listed in kinds/__init__.py) builds its pipeline into the
JobContext and may override what happens once it plays, on a stdin command, on a
bus message, for its position and on a stop. It imports the shared parts
(context, rtp_inputs, outputs, gst, events), never main.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

from mediaplane.media.worker.context import JobContext
from mediaplane.media.worker.events import emit
from mediaplane.media.worker.gst import Gst
from mediaplane.wire.media import (
    AddInput,
    InputReply,
    JobKind,
    Ready,
    RemoveInput,
    WorkerBase,
)

Config = TypeVar("Config", bound=WorkerBase)


class Kind(ABC, Generic[Config]):
    """A kind's pipeline, built from its own config (wire.media: RecordConfig, ...)."""

    name: ClassVar[JobKind]
    elements: ClassVar[tuple[str, ...]]
    """Every GStreamer element the kind may make: checked at the manager's start (a kind
    with one missing is refused with 503) and against the code by a unit test."""

    def __init__(self, job: JobContext, config: Config) -> None:
        self.job = job
        self.config = config

    @abstractmethod
    def build(self) -> None:
        """Make and link the pipeline's elements (it is not playing yet)."""

    def started(self) -> None:
        """The pipeline plays: say `ready` with the ports the RTP inputs bound."""
        emit(Ready(ports=self.job.rtp.ports(), pid=0))

    def command(self, command: AddInput | RemoveInput) -> InputReply:
        """One command from the manager; raises to reply `input-error`."""
        raise ValueError(f"a {self.name} job takes no {command.cmd} command")

    def public_error(self, element: str, message: str) -> str | None:
        """What the job says instead of an error's own words (None: those words).

        A kind that talks to a remote peer hides what the peer answered
        (media/worker/outbound.py)."""
        return None

    def on_message(self, msg: Gst.Message) -> bool:
        """A bus message; True when handled here (main.py then ignores it)."""
        return False

    def position_s(self) -> float:
        """The `stats` position: the pipeline's."""
        ok, position = self.job.pipeline.query_position(Gst.Format.TIME)
        return position / Gst.SECOND if ok else 0.0

    def stop(self) -> None:
        """SIGINT: end the stream so the file is finished, then the bus says EOS."""
        self.job.finish()
