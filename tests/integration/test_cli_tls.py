"""`mediaplane up` with TLS (MEDIAPLANE_TLS=on, here on loopback; `auto` turns it on for
any network address): the self-signed certificate is made once on a fresh data_dir, its
key private, reused by the next start; the printed URL is https; plain http and ws are
refused on that port, and a participant over wss, a WHIP client and the CLI are served."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage

from mediaplane import certificates
from mediaplane.peer import ToneTrack
from mediaplane.peer.signaling_client import SignalingClient
from mediaplane.settings import Settings
from tests.support.cli_system import Running, running_system, trust
from tests.support.control import participant
from tests.support.whip_client import AiortcWhipClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)
TLS = {"MEDIAPLANE_TLS": "on"}


async def shown(run: Running, text: str) -> str:
    async with asyncio.timeout(20):
        while text not in run.output():
            assert run.proc.returncode is None, run.output()
            await asyncio.sleep(0.2)
    return run.output()


async def test_up_makes_its_certificate_once_and_serves_https_only(tmp_path: Path) -> None:
    settings = Settings(env="test")
    tls_dir = tmp_path / "data" / "tls"
    async with running_system(tmp_path, TLS) as run:
        assert run.url.startswith("https://127.0.0.1:")
        out = await shown(run, f"mediaplane at {run.url}")
        assert f"Open {run.url}/ to join a call" in out, out
        cert = certificates.load(tls_dir / "cert.pem", tls_dir / "key.pem")
        assert "self-signed certificate made now" in out and cert.sha256 in out, out
        assert stat.S_IMODE(cert.key_file.stat().st_mode) == 0o600
        assert {"127.0.0.1", "localhost", "::1"} <= cert.names
        port = run.env["MEDIAPLANE_PORT"]
        ctx = trust(cert.cert_file)

        # Nothing in the clear: a plain http request and a ws:// upgrade both fail.
        with pytest.raises(httpx.TransportError):
            async with httpx.AsyncClient() as plain:
                await plain.get(f"http://127.0.0.1:{port}/readyz")
        room = "tls-demo"
        token = participant(settings, "mallory", room)
        with pytest.raises((InvalidMessage, OSError, EOFError)):
            async with connect(f"ws://127.0.0.1:{port}/ws/rooms/{room}?access_token={token}"):
                pass
        # ... and the normal participant is served over wss afterwards.
        sig = await SignalingClient.connect(
            f"wss://127.0.0.1:{port}/ws/rooms/{room}", participant(settings, "alice", room),
            ssl=ctx,
        )  # fmt: skip
        try:
            joined = await sig.request("join")
            assert joined["peerId"]
        finally:
            await sig.close()
        # WHIP over https: the session's URL (Location, relative) resolves to https.
        whip = AiortcWhipClient(
            f"{run.url}/whip/rooms/{room}", participant(settings, "obs", room, can_publish=True),
            verify=ctx,
        )  # fmt: skip
        try:
            await whip.publish(ToneTrack(freq=440.0))
            assert whip.resource is not None and whip.resource.startswith(f"{run.url}/whip/")
            assert urljoin(run.url, whip.resource) == whip.resource
            await whip.wait_connected()
            assert await whip.delete() == 200
        finally:
            await whip.close()
        status = await run.acli("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"mediaplane at {run.url}" in status.stdout, status.stdout
        first = cert.sha256

    async with running_system(tmp_path, TLS) as run:
        out = await shown(run, f"mediaplane at {run.url}")
        again = certificates.load(tls_dir / "cert.pem", tls_dir / "key.pem")
        assert again.sha256 == first, (again.sha256, first)
        assert "self-signed certificate reused" in out and first in out, out
        assert "made now" not in out, out
        assert stat.S_IMODE(again.key_file.stat().st_mode) == 0o600
    log.info("measured: certificate %s made once, reused by the second start", first)


async def test_up_refuses_an_announced_name_that_does_not_resolve(tmp_path: Path) -> None:
    """Checked before anything starts: one clear line, exit 1, no certificate made."""
    env = {**os.environ, "MEDIAPLANE_ENV": "test", "MEDIAPLANE_DATA_DIR": str(tmp_path),
           "MEDIAPLANE_ANNOUNCED_ADDRESS": "nowhere.invalid", "COLUMNS": "200"}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediaplane.cli", "up", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 1, text
    assert "mediaplane could not start" in text, text
    assert "'nowhere.invalid' is neither an IP address nor a name that resolves" in text, text
    assert "MEDIAPLANE_ANNOUNCED_ADDRESS" in text, text
    assert not (tmp_path / "tls").exists() and not (tmp_path / "redis").exists()
