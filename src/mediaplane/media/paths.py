"""Output and input paths confined to their root.

A client names a file relative to the root; the name is normalised, checked
character by character, resolved with symlinks followed, and refused unless
the result stays under the root. Absolute paths and `..` are refused outright.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from mediaplane.media.errors import BadRequest

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_DEPTH = 8


def confine(root: Path, name: str, *, must_exist: bool = False) -> Path:
    """The absolute path of `name` under `root`, or BadRequest saying why not."""
    if not name or len(name) > 512:
        raise BadRequest("file path must be 1-512 characters")
    if "\x00" in name or "\\" in name:
        raise BadRequest("file path contains a forbidden character")
    pure = PurePosixPath(name)
    if pure.is_absolute():
        raise BadRequest("file path must be relative to the recordings root")
    parts = pure.parts
    if not parts or len(parts) > MAX_DEPTH:
        raise BadRequest(f"file path must have 1-{MAX_DEPTH} segments")
    for part in parts:
        if part in (".", ".."):
            raise BadRequest("file path must not contain '.' or '..' segments")
        if not _SEGMENT.match(part):
            raise BadRequest(f"file path segment {part!r} must match {_SEGMENT.pattern}")
    root = root.resolve()
    candidate = (root / Path(*parts)).resolve()
    if not candidate.is_relative_to(root):
        raise BadRequest("file path escapes the recordings root (through a symlink)")
    if must_exist and not candidate.is_file():
        raise BadRequest(f"file {name!r} does not exist")
    return candidate
