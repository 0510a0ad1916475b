"""`./mediaplane attack` (issue 17, "the same attack suite kept as a tool"): run as a user
runs it, against a real running system, every check holds; against a weakened one (open
join on) that check fails and the command exits 1, so the tool is not a no-op."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.support.control import admin
from tests.support.stack import system

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)


async def attack(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    """`python -m mediaplane.cli attack ...`: (exit code, its --json report, output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediaplane.cli", "attack", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    text = out.decode(errors="replace")
    report = None
    if "--json" in args and "{" in text:
        report = json.loads(text[text.index("{") :])
    assert proc.returncode is not None
    return proc.returncode, report, text


async def test_attack_suite_holds_on_the_running_system(
    sfu: SfuProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with system(tmp_path, sfu, redis_server.url, control_allow=[], media_allow=[]) as st:
        code, report, text = await attack(
            "--url", st.control.http, "--token", admin(st.settings), "--json"
        )
        table_code, _, table = await attack(
            "--url", st.control.http, "--token", admin(st.settings), "--check", "headers"
        )
    assert report is not None, text
    results = {r["name"]: r for r in report["results"]}
    failed = {n: r["detail"] for n, r in results.items() if not r["passed"]}
    assert not failed, failed
    assert code == 0, text
    assert len(results) == 10, sorted(results)
    assert table_code == 0 and "headers" in table and "held" in table, table
    for name, r in results.items():
        log.info("measured: %s: %s", name, r["detail"])


async def test_attack_suite_fails_a_weakened_system(
    sfu: SfuProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with system(
        tmp_path, sfu, redis_server.url, control_allow=[], media_allow=[], open_join=True
    ) as st:
        code, report, text = await attack(
            "--url", st.control.http, "--token", admin(st.settings), "--json",
            "--check", "open join", "--check", "headers",
        )  # fmt: skip
    assert report is not None, text
    results = {r["name"]: r for r in report["results"]}
    assert results["open join"]["passed"] is False, results
    assert results["headers"]["passed"] is True, results
    assert code == 1, text


async def test_attack_refuses_other_targets() -> None:
    """Not this machine (a documentation address): refused before anything is sent."""
    code, _, text = await attack("--url", "http://192.0.2.10:8080", "--token", "x")
    assert code == 2, text
    assert "your own deployment" in text, text
