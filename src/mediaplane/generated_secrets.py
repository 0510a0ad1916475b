"""Secrets a dev machine makes for itself: one file, made on first use, then reused.

`./mediaplane up` in `dev` must not run with the constants in settings.py (anyone who
read the repository could mint admin tokens with them). The first process that needs a
secret makes `<data_dir>/secrets.json` (mode 0600, random values); every later process
(the CLI's `token`, the services `up` starts, a restart) reads the same file, so their
secrets agree. Two processes racing to make it agree too: the file appears whole, once
(written aside, then hard-linked into place, which fails if it exists).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from pathlib import Path

NAMES = ("sfu_secret", "api_secret", "media_secret", "webhook_secret", "turn_secret")


def load_or_create(path: Path) -> dict[str, str]:
    """The generated secrets at `path`, made (0600) if the file does not exist yet. A file
    from an older version that lacks a newer name (turn_secret) gets it added, once, under
    a lock, the others kept."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _publish(path, {name: secrets.token_urlsafe(32) for name in NAMES}, replace=False)
    data = _read(path)
    if any(not isinstance(data.get(n), str) for n in NAMES):
        with open(path.with_name(f".{path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = _read(path)  # another process may have added them meanwhile
            missing = [n for n in NAMES if n not in data]
            if missing:
                data |= {name: secrets.token_urlsafe(32) for name in missing}
                _publish(path, data, replace=True)
    if not all(isinstance(data.get(n), str) for n in NAMES):
        raise ValueError(f"{path} is not a secrets file of ours: remove it to make a new one")
    return {name: str(data[name]) for name in NAMES}


def _read(path: Path) -> dict[str, object]:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ValueError(f"{path} is readable by others (mode {mode:o}): chmod 600 it")
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a secrets file of ours: remove it to make a new one")
    return data


def _publish(path: Path, values: dict[str, object], *, replace: bool) -> None:
    """Write aside (0600), then into place whole: hard-linked when it must not exist yet
    (fails if another process was first: its file wins), renamed over when replacing."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(values, f)
        if replace:
            os.replace(aside, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)
