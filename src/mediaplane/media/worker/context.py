"""What every kind builds on: the job's config, its pipeline and RTP inputs, how it ends."""

from __future__ import annotations

from collections.abc import Callable

from mediaplane.media.worker.events import emit
from mediaplane.media.worker.gst import GLib, Gst, add, chain
from mediaplane.media.worker.rtp_inputs import RtpInputs
from mediaplane.wire.media import PipelineError, WorkerBase


class JobContext:
    def __init__(self, config: WorkerBase) -> None:
        self.job_id = config.job_id
        self.pipeline = Gst.Pipeline.new(f"job-{config.job_id}")
        self.loop = GLib.MainLoop()
        self.rtp = RtpInputs(self.pipeline, config.listen_ip)
        self.exit_code = 0
        self.stopping = False  # asked to stop (SIGINT)
        # (element, message) -> what the job says instead (the kind's `public_error`)
        self.public_error: Callable[[str, str], str | None] = lambda _element, _message: None

    def add(self, *elements: Gst.Element) -> None:
        add(self.pipeline, *elements)

    def chain(self, *elements: Gst.Element) -> None:
        chain(self.pipeline, *elements)

    def report(self, message: str, debug: str = "", element: str = "") -> None:
        """The job's error event: the pipeline's words, or the kind's generic sentence
        when they would tell the caller about a remote peer (then only `detail` has them)."""
        generic = self.public_error(element, message)
        if generic is None:
            emit(PipelineError(message=message, debug=debug))
        else:
            emit(PipelineError(message=generic, detail=message))

    def fail(self, message: str, debug: str = "", element: str = "") -> None:
        """End the job as failed; the first failure is the reason."""
        if self.exit_code:
            return
        self.report(message, debug, element)
        self.exit_code = 2
        self.loop.quit()

    def finish(self) -> None:
        """End the stream: every branch gets EOS, the muxer finishes, the bus says EOS."""
        self.rtp.end_unlinked()
        self.pipeline.send_event(Gst.Event.new_eos())
