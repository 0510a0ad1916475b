"""How the manager recognises its workers after a restart (media/process.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from mediaplane.media.process import WORKER_MODULE, is_worker_of, pid_alive


def test_the_worker_is_spawned_as_its_package() -> None:
    # tests/support/media.py and the orphan check look for this argv element.
    assert WORKER_MODULE == "mediaplane.media.worker"
    assert importlib.util.find_spec(f"{WORKER_MODULE}.__main__") is not None


def test_a_live_pid_a_reaped_one_and_not_a_worker() -> None:
    assert pid_alive(os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    assert not is_worker_of(os.getpid(), "0123456789abcdef")  # pytest is no worker


def test_a_worker_is_known_by_its_module_and_its_job_id() -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(30)", WORKER_MODULE,
            "/var/x/0123456789abcdef.config.json"]  # fmt: skip
    proc = subprocess.Popen(argv)
    try:
        assert is_worker_of(proc.pid, "0123456789abcdef")
        assert not is_worker_of(proc.pid, "fedcba9876543210")
    finally:
        proc.kill()
        proc.wait()
