"""Unit tests start no process and no service: a test that tries fails at once."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest


class _NoProcess(subprocess.Popen):  # type: ignore[type-arg]
    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a unit test started a process: {args!r}; it belongs in integration")


@pytest.fixture(autouse=True)
def _no_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # asyncio's subprocesses go through subprocess.Popen too.
    monkeypatch.setattr(subprocess, "Popen", _NoProcess)
    yield
