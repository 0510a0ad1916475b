"""The job kinds, one file each, and the one table the worker and the manager look them up in.

A new kind: a `kinds/<kind>.py` with a `Kind[<its config>]` subclass (worker/kind.py),
its name in `JobKind`, a request model and a worker config model (wire/media.py), a line
in KINDS below, and its request -> config and cost in the manager (media/configs.py).
"""

from __future__ import annotations

from typing import Any

from mediaplane.media.worker.kind import Kind
from mediaplane.media.worker.kinds.composite import Composite
from mediaplane.media.worker.kinds.inject import Inject
from mediaplane.media.worker.kinds.record import Record
from mediaplane.media.worker.kinds.stream import Stream
from mediaplane.media.worker.kinds.transcode import Transcode
from mediaplane.wire.media import JobKind

KINDS: dict[JobKind, type[Kind[Any]]] = {
    kind.name: kind for kind in (Record, Stream, Inject, Transcode, Composite)
}

ELEMENTS_BY_KIND: dict[str, list[str]] = {name: list(kind.elements) for name, kind in KINDS.items()}
"""Every GStreamer element each kind may make (tests/unit/media/worker/test_elements.py
checks the worker code makes none missing from here)."""
