"""A job's output under the recordings root: confined, never overwritten, with room to write,
and kept (`<name>.part` renamed to `<name>`) however its worker ended."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mediaplane.media.errors import BadRequest, Conflict, MediaError
from mediaplane.media.paths import confine
from mediaplane.wire.media import Job

MIN_FREE_BYTES = 64 * 2**20


class InsufficientStorage(MediaError):
    status = 507
    code = "insufficient_storage"


def output_file(root: Path, name: str, suffix: str) -> Path:
    """The final path of a file output (the worker writes `<it>.part` first)."""
    path = confine(root, name)
    if path.suffix.lower() != suffix:
        path = path.with_name(path.name + suffix)
    if path.exists() or Path(str(path) + ".part").exists():
        raise Conflict(f"{path.relative_to(root.resolve())} already exists")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadRequest(f"cannot create the folder for {name!r}: {e.strerror}") from None
    if not os.access(path.parent, os.W_OK):
        raise BadRequest(f"the folder for {name!r} is not writable")
    free = shutil.disk_usage(path.parent).free
    if free < MIN_FREE_BYTES:
        raise InsufficientStorage(f"only {free // 2**20} MiB free under the recordings root")
    return path


def hls_folder(root: Path, name: str) -> Path:
    """A new folder for an HLS output (playlist and segments)."""
    folder = confine(root, name)
    if folder.exists():
        raise Conflict(f"{name} already exists")
    folder.mkdir(parents=True)
    return folder


def keep_output(job: Job) -> str:
    """Rename the worker's `.part` to the job's output path; says what was kept.

    Also when the worker died: the container is crash-safe, the file decodes up to
    the death. Sets the job's byte count.
    """
    if job.output_path is None:
        return "no file"
    final = Path(job.output_path)
    part = Path(job.output_path + ".part")
    if part.is_dir() or final.is_dir():
        return f"output kept in {final}"
    if part.exists():
        os.replace(part, final)
    if final.exists():
        job.stats.bytes = final.stat().st_size
        return f"file kept at {final.name}"
    return "no data was written"
