"""`mediaplane up` inside a network namespace, as an operator runs it on a host of its
own: control plane on the namespace's address (announced: MEDIAPLANE_ANNOUNCED_ADDRESS),
so https by the TLS auto default with the certificate `up` makes; the SFU announcing
that address, coturn on it (its TLS listener presenting the same certificate), redis
and the media manager on the namespace's loopback. The test's namespace reaches it over
the bridge (netns.Lan), trusting exactly that certificate; a browser in another
namespace through that one's Link, pinning its key (`spki`)."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from mediaplane import certificates
from mediaplane.certificates import Certificate
from tests.support.cli_system import trust
from tests.support.netns import Lan

CONTROL_PORT = 8080
RTC_SERVER_PORT = 40000  # the SFU worker's one UDP and one TCP port (ICE, ICE-TCP)
TURN_PORT = 3478
TURN_TLS_PORT = 443


@dataclass
class NsSystem:
    lan: Lan
    index: int
    env: dict[str, str]
    out: Path
    proc: asyncio.subprocess.Process

    @property
    def ip(self) -> str:
        return self.lan.ip(self.index)

    @property
    def http(self) -> str:
        """The control plane's URL (https: the name stays what ControlInstance calls it)."""
        return f"https://{self.ip}:{CONTROL_PORT}"

    def ws(self, room: str) -> str:
        return f"wss://{self.ip}:{CONTROL_PORT}/ws/rooms/{room}"

    @property
    def certificate(self) -> Certificate:
        """The self-signed certificate `up` made: the control plane's and coturn's TLS."""
        tls = Path(self.env["MEDIAPLANE_DATA_DIR"]) / "tls"
        return certificates.load(tls / certificates.CERT_NAME, tls / certificates.KEY_NAME)

    @property
    def ssl(self) -> ssl.SSLContext:
        """What the test's clients trust: that one certificate, its name checked."""
        return trust(self.certificate.cert_file)

    @property
    def spki(self) -> str:
        """Chromium's --ignore-certificate-errors-spki-list entry for it."""
        return self.certificate.spki_sha256

    def output(self) -> str:
        return self.out.read_text(errors="replace")


@asynccontextmanager
async def system_in_namespace(
    lan: Lan, index: int, tmp: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[NsSystem]:
    ip = lan.ip(index)
    env = {
        **os.environ,
        "MEDIAPLANE_ENV": "test",  # secrets: the suite's own (tests/conftest.py), never dev
        "MEDIAPLANE_DATA_DIR": str(tmp / "data"),
        "MEDIAPLANE_HOST": ip,
        "MEDIAPLANE_ANNOUNCED_ADDRESS": ip,
        "MEDIAPLANE_PORT": str(CONTROL_PORT),
        "MEDIAPLANE_RTC_LISTEN_IP": ip,
        "MEDIAPLANE_RTC_SERVER_PORT": str(RTC_SERVER_PORT),
        "MEDIAPLANE_SFU_NUM_WORKERS": "1",
        "MEDIAPLANE_TURN_PORT": str(TURN_PORT),
        "MEDIAPLANE_TURN_TLS_PORT": str(TURN_TLS_PORT),
        "MEDIAPLANE_URL": f"https://{ip}:{CONTROL_PORT}",
        "COLUMNS": "200",
        **(extra_env or {}),
    }
    for name in ("MEDIAPLANE_REDIS_URL", "MEDIAPLANE_TLS"):
        env.pop(name, None)  # TLS: the auto default, as an operator runs it
    out = tmp / "up.out"
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", lan.namespaces[index],
            sys.executable, "-m", "mediaplane.cli", "up",
            env=env, stdout=sink, stderr=sink,
        )  # fmt: skip
    system = NsSystem(lan, index, env, out, proc)
    try:
        async with asyncio.timeout(90):
            while f"mediaplane at {system.http}" not in system.output():
                assert proc.returncode is None, system.output()
                await asyncio.sleep(0.3)
            async with httpx.AsyncClient(verify=system.ssl) as http:
                while True:
                    assert proc.returncode is None, system.output()
                    try:
                        if (await http.get(f"{system.http}/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.3)
        yield system
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # `ip netns exec` execs: this is the CLI
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
