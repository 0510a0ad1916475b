"""The event line: the worker's only way of telling the manager things (wire.media)."""

from __future__ import annotations

import sys

from mediaplane.wire.media import AnyWorkerEvent


def emit(event: AnyWorkerEvent) -> None:
    """One JSON line on stdout."""
    try:
        sys.stdout.write(event.model_dump_json() + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        pass  # the manager is gone; keep working until told to stop
