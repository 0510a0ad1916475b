"""How the manager recognises its workers after a restart (media/process.py), with real
processes: a live one, a reaped one, and one whose argv names the worker module."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mediaplane.media.process import WORKER_MODULE, is_worker_of, pid_alive

pytestmark = pytest.mark.integration


def test_a_live_pid_a_reaped_one_and_not_a_worker() -> None:
    assert pid_alive(os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    assert not is_worker_of(os.getpid(), "0123456789abcdef")  # pytest is no worker


def test_a_worker_is_known_by_its_module_and_its_job_id() -> None:
    code = "import time; print('up', flush=True); time.sleep(30)"
    argv = [sys.executable, "-c", code, WORKER_MODULE, "/var/x/0123456789abcdef.config.json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    try:
        # Read /proc only once it runs the new program: right after fork, its cmdline is
        # still pytest's (this was a race).
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        assert is_worker_of(proc.pid, "0123456789abcdef")
        assert not is_worker_of(proc.pid, "fedcba9876543210")
    finally:
        proc.kill()
        proc.wait()
