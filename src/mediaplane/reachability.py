"""How other machines reach the system (docs/networking.md): the announced address,
checked at start, and whether the control plane speaks https/wss with which certificate.

Browsers give a page the camera and microphone only in a secure context: https, or
http on loopback. So `MEDIAPLANE_TLS=auto` (the default) turns TLS on as soon as the
control plane listens on or announces an address that is not loopback, and keeps plain
http for loopback development (and the tests that run there).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from mediaplane import certificates
from mediaplane.certificates import Certificate
from mediaplane.settings import Settings, is_loopback

WILDCARDS = ("0.0.0.0", "::", "")
LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"]


class ReachError(Exception):
    """A setting that makes the system unreachable or unsafe (the message says which)."""


@dataclass(frozen=True)
class Reach:
    announced: str  # what other machines use: the pages' URL, the certificate's name
    listen: str
    port: int
    certificate: Certificate | None  # None: plain http
    regenerated_because: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def scheme(self) -> str:
        return "https" if self.certificate is not None else "http"

    @property
    def url(self) -> str:
        """The control plane as other machines (and the pages) reach it."""
        return f"{self.scheme}://{url_host(self.announced)}:{self.port}"

    def describe(self) -> str:
        """One line for `up`: plain http, or https with which certificate."""
        cert = self.certificate
        if cert is None:
            return "plain http"
        if cert.generated:
            why = f" ({self.regenerated_because})" if self.regenerated_because else ""
            kind = f"self-signed certificate made now{why}"
        else:
            kind = "self-signed certificate reused" if cert.self_signed else "certificate"
        return f"https, {kind}: {cert.cert_file}, SHA-256 {cert.sha256}"

    @property
    def local_url(self) -> str:
        """The control plane as a client on this machine reaches it."""
        return f"{self.scheme}://{url_host(local_host(self.listen))}:{self.port}"


def url_host(address: str) -> str:
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address


def local_host(listen: str) -> str:
    if listen in ("0.0.0.0", ""):
        return "127.0.0.1"
    return "::1" if listen == "::" else listen


def announced_address(settings: Settings) -> str:
    """MEDIAPLANE_ANNOUNCED_ADDRESS; else the SFU's announced address; else the control
    plane's listen address when it is one address; else 127.0.0.1."""
    if settings.announced_address:
        return settings.announced_address.strip("[]")
    if settings.rtc_announced_address:
        return settings.rtc_announced_address.strip("[]")
    return settings.host if settings.host not in WILDCARDS else "127.0.0.1"


def tls_required(settings: Settings) -> bool:
    if settings.tls != "auto":
        return settings.tls == "on"
    return not (is_loopback(settings.host) and is_loopback(announced_address(settings)))


def resolve(address: str) -> list[str]:
    """The IP addresses `address` stands for (itself when it is one); ReachError when
    it is neither an address nor a name that resolves."""
    try:
        return [str(ipaddress.ip_address(address))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(address, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ReachError(
            f"the announced address {address!r} is neither an IP address nor a name that "
            f"resolves ({e}): set MEDIAPLANE_ANNOUNCED_ADDRESS to this machine's address"
        ) from None
    return sorted({str(info[4][0]) for info in infos})


def _warnings(settings: Settings, announced: str, resolved: list[str], tls: bool) -> list[str]:
    out: list[str] = []
    where = settings.host or "0.0.0.0"
    if all(is_loopback(a) for a in resolved) and not is_loopback(settings.host):
        out.append(
            f"the announced address {announced} is loopback while the control plane listens "
            f"on {where}: other machines would be sent to themselves (and get no media). "
            "Set MEDIAPLANE_ANNOUNCED_ADDRESS to the address they reach this machine at"
        )
    if not all(is_loopback(a) for a in resolved) and is_loopback(settings.rtc_listen_ip):
        out.append(
            f"the SFU takes media on {settings.rtc_listen_ip} only while {announced} is "
            "announced: set MEDIAPLANE_RTC_LISTEN_IP to 0.0.0.0 or this machine's address"
        )
    if not tls and not (is_loopback(settings.host) and is_loopback(announced)):
        out.append(
            "plain http on a network address (MEDIAPLANE_TLS=off): browsers on other "
            "machines refuse the camera and microphone there (not a secure context) "
            "unless a reverse proxy in front of it serves https"
        )
    return out


def prepare(settings: Settings) -> Reach:
    """Check the announced address and make (or reuse, or load) the certificate."""
    announced = announced_address(settings)
    resolved = resolve(announced)
    tls = tls_required(settings)
    warnings = _warnings(settings, announced, resolved, tls)
    cert: Certificate | None = None
    why: str | None = None
    configured = (settings.tls_cert_file, settings.tls_key_file)
    if (configured[0] is None) != (configured[1] is None):
        raise ReachError("set both MEDIAPLANE_TLS_CERT_FILE and MEDIAPLANE_TLS_KEY_FILE, or none")
    if tls and settings.tls_cert_file is not None and settings.tls_key_file is not None:
        try:
            cert = certificates.load(settings.tls_cert_file, settings.tls_key_file)
        except certificates.CertificateError as e:
            raise ReachError(str(e)) from None
        if not cert.covers(announced):
            warnings.append(
                f"the configured certificate is for {', '.join(sorted(cert.names)) or 'no name'}"
                f", not the announced address {announced}: browsers will refuse it"
            )
    elif tls:
        names = [announced]
        if settings.host not in WILDCARDS:
            names.append(settings.host)
        cert, why = certificates.self_signed(tls_dir(settings), [*names, *LOOPBACK_NAMES])
    return Reach(announced, settings.host, settings.port, cert, why, warnings)


def tls_dir(settings: Settings) -> Path:
    return settings.data_dir / "tls"


def local_base_url(settings: Settings) -> str:
    """The control plane of these settings as a client on this machine reaches it."""
    scheme = "https" if tls_required(settings) else "http"
    return f"{scheme}://{url_host(local_host(settings.host))}:{settings.port}"


def public_base_url(settings: Settings) -> str:
    """The control plane of these settings as other machines (and its pages) reach it."""
    scheme = "https" if tls_required(settings) else "http"
    return f"{scheme}://{url_host(announced_address(settings))}:{settings.port}"


def client_verify(settings: Settings, *, check_hostname: bool) -> ssl.SSLContext | bool:
    """What a client on this machine (the CLI) trusts: the control plane's own
    certificate (pinned, as its trust anchor) besides the system's CAs."""
    cert_file = settings.tls_cert_file or tls_dir(settings) / certificates.CERT_NAME
    if not tls_required(settings) or not cert_file.exists():
        return True
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cafile=str(cert_file))
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the leaf itself is the anchor
    ctx.check_hostname = check_hostname
    return ctx


def ssl_files(reach: Reach | None) -> tuple[str | None, str | None]:
    """uvicorn's (ssl_certfile, ssl_keyfile): with them its listener is TLS only (a plain
    http request or WebSocket upgrade fails the handshake: nothing is served in the clear)."""
    if reach is None or reach.certificate is None:
        return None, None
    return str(reach.certificate.cert_file), str(reach.certificate.key_file)
