"""The control plane's TLS certificate: a self-signed one made for the announced address
(kept in a directory, reused while it still fits), or one the operator configured.

Made with `cryptography` (an ECDSA P-256 key, SHA-256 signature). The key file is
written with mode 0600 before a byte of the key goes in; both files are replaced
atomically (write beside, then rename), so a reader never sees half a certificate.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365
# A certificate that expires within this is made again at the next start.
RENEW_BEFORE = dt.timedelta(days=7)
CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"


class CertificateError(Exception):
    """A configured certificate or key that cannot be used (the message says why)."""


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path
    names: frozenset[str]  # DNS names and IP addresses of its subjectAltName
    not_after: dt.datetime
    sha256: str  # fingerprint of the DER certificate, AA:BB:... (what browsers show)
    spki_sha256: str  # base64 SHA-256 of its public key (Chromium's SPKI pin)
    self_signed: bool
    generated: bool = False  # made by this call

    def covers(self, address: str) -> bool:
        return _normal(address) in self.names


def _normal(address: str) -> str:
    text = address.strip("[]")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.lower().rstrip(".")


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = []
    for name in dict.fromkeys(_normal(n) for n in names if n):
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(general)


def _describe(cert: x509.Certificate, cert_file: Path, key_file: Path) -> Certificate:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        names |= {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        names = set()
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return Certificate(
        cert_file=cert_file,
        key_file=key_file,
        names=frozenset(names),
        not_after=cert.not_valid_after_utc,
        sha256=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        spki_sha256=base64.b64encode(hashlib.sha256(spki).digest()).decode(),
        self_signed=cert.issuer == cert.subject,
    )


def load(cert_file: Path, key_file: Path) -> Certificate:
    """The certificate in `cert_file` (its first one: the leaf), after checking that
    `key_file` holds its private key."""
    try:
        chain = x509.load_pem_x509_certificates(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise CertificateError(f"cannot read {cert_file} / {key_file}: {e}") from None
    cert = chain[0]
    ours = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if ours != theirs:
        raise CertificateError(f"{key_file} is not the private key of {cert_file}")
    return _describe(cert, cert_file, key_file)


def generate(directory: Path, names: list[str], now: dt.datetime | None = None) -> Certificate:
    """A new self-signed certificate for `names` in `directory` (key mode 0600)."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mediaplane (self-signed)"),
        x509.NameAttribute(NameOID.COMMON_NAME, _normal(names[0]) if names else "mediaplane"),
    ])  # fmt: skip
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    key_file, cert_file = directory / KEY_NAME, directory / CERT_NAME
    _write(
        key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write(cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    made = _describe(cert, cert_file, key_file)
    return Certificate(**{**made.__dict__, "generated": True})


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)  # whatever the umask took away from the certificate's 0644
    os.replace(tmp, path)


def why_not_reusable(cert: Certificate, names: list[str], now: dt.datetime) -> str | None:
    """None when `cert` may serve `names` now, else why it must be made again."""
    missing = [n for n in names if n and not cert.covers(n)]
    if missing:
        return f"{', '.join(missing)} not in its names ({', '.join(sorted(cert.names))})"
    if cert.not_after - RENEW_BEFORE <= now:
        return f"it expires {cert.not_after:%Y-%m-%d %H:%M} UTC"
    if cert.key_file.stat().st_mode & 0o077:
        return f"{cert.key_file} is readable by others"
    return None


def self_signed(
    directory: Path, names: list[str], now: dt.datetime | None = None
) -> tuple[Certificate, str | None]:
    """The self-signed certificate in `directory` if it covers `names` and is not
    about to expire, else a new one: (certificate, why it was made again or None)."""
    now = now or dt.datetime.now(dt.UTC)
    cert_file, key_file = directory / CERT_NAME, directory / KEY_NAME
    if not (cert_file.exists() and key_file.exists()):
        return generate(directory, names, now), None
    try:
        existing = load(cert_file, key_file)
    except CertificateError as e:
        return generate(directory, names, now), str(e)
    why = why_not_reusable(existing, names, now)
    if why is None:
        return existing, None
    return generate(directory, names, now), why
