"""How the manager recognises its workers after a restart (media/process.py)."""

from __future__ import annotations

import importlib.util

from mediaplane.media.process import WORKER_MODULE


def test_the_worker_is_spawned_as_its_package() -> None:
    # tests/support/media.py and the orphan check look for this argv element.
    assert WORKER_MODULE == "mediaplane.media.worker"
    assert importlib.util.find_spec(f"{WORKER_MODULE}.__main__") is not None
