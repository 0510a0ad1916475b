"""coturn (`turnserver`) as a child process of `mediaplane up`, like RedisServer.

Its configuration is a file of its own (0600: it holds the shared secret, which on a
command line every local user could read), made from the settings at each start:

- listeners: UDP and TCP on `turn_port`, TLS on `tls_port(settings)`; no DTLS, no CLI,
  no web admin, no RFC 5780 extra ports, no TCP relays (the SFU speaks UDP);
- authentication: the TURN REST API (`use-auth-secret`, credentials.py), TLS 1.2+;
- where it relays: never loopback, the private ranges, link-local, multicast or
  0.0.0.0/8 (a relay must not become a way into the machine or its network), except
  exactly the SFU's own RTC address (allowed-peer-ip), which in a LAN or a test is
  itself private;
- quotas: allocations per user (one participant's credentials) and in total.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

from mediaplane import certificates
from mediaplane.certificates import Certificate
from mediaplane.reachability import resolve
from mediaplane.settings import Settings
from mediaplane.turn.credentials import tls_port, turn_address

# Peers a relay never reaches (RFC 8656 section 21.4 and coturn's own advice).
DENIED_PEERS = (
    "0.0.0.0-0.255.255.255",
    "127.0.0.0-127.255.255.255",
    "10.0.0.0-10.255.255.255",
    "172.16.0.0-172.31.255.255",
    "192.168.0.0-192.168.255.255",
    "169.254.0.0-169.254.255.255",
    "100.64.0.0-100.127.255.255",
    "::1",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
)


@dataclass(frozen=True)
class TurnConfig:
    listen_ip: str
    announced: str
    port: int
    tls_port: int
    secret: str
    realm: str
    min_port: int
    max_port: int
    allowed_peers: tuple[str, ...]
    user_quota: int
    total_quota: int
    cert: Path
    key: Path
    directory: Path

    @classmethod
    def from_settings(
        cls, settings: Settings, certificate: Certificate | None = None
    ) -> TurnConfig:
        """`certificate`: the control plane's (reachability.prepare) when it has one, so
        a browser trusting the pages trusts TURN/TLS too; else the configured
        MEDIAPLANE_TLS_CERT_FILE, else a self-signed one for the TURN address made in
        <data_dir>/turn (and reused)."""
        directory = settings.data_dir / "turn"
        clash = {"MEDIAPLANE_TURN_PORT": settings.turn_port,
                 "MEDIAPLANE_TURN_TLS_PORT": tls_port(settings)}  # fmt: skip
        for name, port in clash.items():
            if port == settings.port:
                raise ValueError(
                    f"{name} ({port}) is the control plane's MEDIAPLANE_PORT too: give one "
                    "of them another port (docs/networking.md#a-reverse-proxy-in-front)"
                )
        address = turn_address(settings)
        announced = ip_of(address)
        if certificate is not None:
            cert_path, key_path = certificate.cert_file, certificate.key_file
        elif settings.tls_cert_file is not None and settings.tls_key_file is not None:
            cert_path, key_path = settings.tls_cert_file, settings.tls_key_file
        else:
            own, _ = certificates.self_signed(directory, [address, announced])
            cert_path, key_path = own.cert_file, own.key_file
        # The SFU's candidates carry the announced address; it listens on rtc_listen_ip.
        peers = tuple(dict.fromkeys(a for a in (announced, settings.rtc_listen_ip) if a))
        return cls(
            listen_ip=settings.rtc_listen_ip,
            announced=announced,
            port=settings.turn_port,
            tls_port=tls_port(settings),
            secret=settings.secret("turn_secret"),
            realm=settings.turn_realm,
            min_port=settings.turn_min_port,
            max_port=settings.turn_max_port,
            allowed_peers=tuple(p for p in peers if p not in ("0.0.0.0", "::")),
            user_quota=settings.turn_user_quota,
            total_quota=settings.turn_total_quota,
            cert=cert_path,
            key=key_path,
            directory=directory,
        )

    def render(self) -> str:
        """turnserver.conf: one option a line."""
        lines = [
            f"listening-port={self.port}",
            f"tls-listening-port={self.tls_port}",
            f"min-port={self.min_port}",
            f"max-port={self.max_port}",
            f"realm={self.realm}",
            "use-auth-secret",
            f"static-auth-secret={self.secret}",
            "fingerprint",
            f"user-quota={self.user_quota}",
            f"total-quota={self.total_quota}",
            "stale-nonce=600",
            f"cert={self.cert}",
            f"pkey={self.key}",
            "no-tlsv1",
            "no-tlsv1_1",
            "no-dtls",
            "no-cli",
            "no-rfc5780",
            "no-tcp-relay",
            "no-multicast-peers",
            "no-software-attribute",
            "no-stun-backward-compatibility",
            f"pidfile={self.directory / 'turnserver.pid'}",
            f"userdb={self.directory / 'turndb'}",  # its own, not /var/lib/turn's
            f"log-file={self.directory / 'turnserver.log'}",
            "simple-log",
            "no-stdout-log",
        ]
        if self.listen_ip not in ("0.0.0.0", "::"):
            lines += [f"listening-ip={self.listen_ip}", f"relay-ip={self.listen_ip}"]
            if self.announced != self.listen_ip:
                lines.append(f"external-ip={self.announced}/{self.listen_ip}")
        lines += [f"denied-peer-ip={r}" for r in DENIED_PEERS]
        lines += [f"allowed-peer-ip={a}" for a in self.allowed_peers]
        return "\n".join(lines) + "\n"


def ip_of(address: str) -> str:
    """coturn takes IP addresses only: a DNS name (the announced address may be one,
    checked by reachability at start) becomes the first IPv4 address it resolves to."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        pass
    resolved = resolve(address)
    return next((a for a in resolved if ":" not in a), resolved[0])


class TurnServer:
    def __init__(self, proc: asyncio.subprocess.Process, config: TurnConfig) -> None:
        self._proc = proc
        self.config = config

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def log_path(self) -> Path:
        return self.config.directory / "turnserver.log"

    def describe(self) -> str:
        c = self.config
        return (
            f"{c.announced} udp+tcp {c.port}, tls {c.tls_port} (relay ports "
            f"{c.min_port}-{c.max_port}, pid {self.pid})"
        )

    @classmethod
    async def start(cls, settings: Settings, certificate: Certificate | None = None) -> TurnServer:
        binary = shutil.which("turnserver")
        if binary is None:
            raise RuntimeError("turnserver is missing: apt-get install coturn")
        config = TurnConfig.from_settings(settings, certificate)
        config.directory.mkdir(parents=True, exist_ok=True)
        conf = config.directory / "turnserver.conf"
        conf.touch(mode=0o600)
        conf.chmod(0o600)
        conf.write_text(config.render())
        config.directory.joinpath("turnserver.log").unlink(missing_ok=True)
        proc = await asyncio.create_subprocess_exec(
            binary, "-c", str(conf),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C reaches us; we stop it in order
        )  # fmt: skip
        server = cls(proc, config)
        try:
            await server._wait_ready()
        except BaseException:
            await server.stop()
            raise
        return server

    async def _wait_ready(self, timeout: float = 10.0) -> None:
        """Until both the TCP and the TLS listener accept (coturn logs a failed bind and
        goes on without that listener: that is an error here)."""
        c = self.config
        host = c.listen_ip if c.listen_ip not in ("0.0.0.0", "::") else "127.0.0.1"
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._proc.returncode is not None:
                        raise RuntimeError(f"turnserver exited: {self._log_tail()}")
                    if await _accepts(host, c.port, None) and await _accepts(host, c.tls_port, tls):
                        return
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise RuntimeError(
                f"turnserver did not listen on {host} TCP {c.port} and TLS {c.tls_port} "
                f"within {timeout:g} s (a port taken? set MEDIAPLANE_TURN_PORT / "
                f"MEDIAPLANE_TURN_TLS_PORT): {self._log_tail()}"
            ) from None

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").splitlines()
            return " | ".join(line for line in lines if "ERROR" in line or "error" in line)[-800:]
        return ""

    async def stop(self) -> None:
        if self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()

    async def wait(self) -> int:
        return await self._proc.wait()


async def _accepts(host: str, port: int, tls: ssl.SSLContext | None) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=tls), 1.0)
    except (OSError, TimeoutError, ssl.SSLError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True
