"""What every kind builds on: the job's config, its pipeline and RTP inputs, how it ends."""

from __future__ import annotations

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

    def add(self, *elements: Gst.Element) -> None:
        add(self.pipeline, *elements)

    def chain(self, *elements: Gst.Element) -> None:
        chain(self.pipeline, *elements)

    def fail(self, message: str, debug: str = "") -> None:
        """End the job as failed; the first failure is the reason."""
        if self.exit_code:
            return
        emit(PipelineError(message=message, debug=debug))
        self.exit_code = 2
        self.loop.quit()

    def finish(self) -> None:
        """End the stream: every branch gets EOS, the muxer finishes, the bus says EOS."""
        self.rtp.end_unlinked()
        self.pipeline.send_event(Gst.Event.new_eos())
