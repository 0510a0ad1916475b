"""The self-signed certificate: its names, its key's mode, reuse, and when it is made again."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509

from mediaplane import certificates
from mediaplane.certificates import CertificateError

NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)


def test_a_new_certificate_names_every_address_and_keeps_its_key_private(tmp_path: Path) -> None:
    cert, why = certificates.self_signed(
        tmp_path / "tls", ["10.1.2.3", "Media.Example.org.", "::1", "localhost"], NOW
    )
    assert why is None and cert.generated and cert.self_signed
    assert cert.names == {"10.1.2.3", "media.example.org", "::1", "localhost"}
    assert cert.covers("[::1]") and cert.covers("MEDIA.example.org") and not cert.covers("10.1.2.4")
    assert stat.S_IMODE(cert.key_file.stat().st_mode) == 0o600
    parsed = x509.load_pem_x509_certificate(cert.cert_file.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3", "::1"]
    assert san.get_values_for_type(x509.DNSName) == ["media.example.org", "localhost"]
    assert parsed.not_valid_after_utc - NOW == dt.timedelta(days=certificates.VALID_DAYS)
    assert parsed.not_valid_before_utc <= NOW
    eku = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert len(cert.sha256.split(":")) == 32 and len(cert.spki_sha256) == 44
    assert not list((tmp_path / "tls").glob(".*tmp"))  # no temporary file left behind


def test_a_fitting_certificate_is_reused(tmp_path: Path) -> None:
    first, _ = certificates.self_signed(tmp_path, ["10.1.2.3", "localhost"], NOW)
    again, why = certificates.self_signed(tmp_path, ["10.1.2.3"], NOW + dt.timedelta(days=300))
    assert why is None and not again.generated
    assert again.sha256 == first.sha256 and again.spki_sha256 == first.spki_sha256


def test_a_new_address_or_a_near_expiry_makes_a_new_certificate(tmp_path: Path) -> None:
    first, _ = certificates.self_signed(tmp_path, ["10.1.2.3"], NOW)
    moved, why = certificates.self_signed(tmp_path, ["10.9.9.9"], NOW)
    assert moved.generated and moved.sha256 != first.sha256
    assert why is not None and "10.9.9.9 not in its names" in why
    assert moved.names == {"10.9.9.9"}
    late = NOW + dt.timedelta(days=certificates.VALID_DAYS) - certificates.RENEW_BEFORE
    renewed, why = certificates.self_signed(tmp_path, ["10.9.9.9"], late)
    assert renewed.generated and renewed.sha256 != moved.sha256
    assert why is not None and "expires" in why
    assert renewed.not_after > late + dt.timedelta(days=300)


def test_a_key_readable_by_others_or_damaged_is_replaced(tmp_path: Path) -> None:
    first, _ = certificates.self_signed(tmp_path, ["10.1.2.3"], NOW)
    first.key_file.chmod(0o644)
    again, why = certificates.self_signed(tmp_path, ["10.1.2.3"], NOW)
    assert again.generated and why is not None and "readable by others" in why
    assert stat.S_IMODE(again.key_file.stat().st_mode) == 0o600
    again.cert_file.write_text("not a certificate")
    third, why = certificates.self_signed(tmp_path, ["10.1.2.3"], NOW)
    assert third.generated and why is not None and "cannot read" in why


def test_a_configured_pair_must_belong_together(tmp_path: Path) -> None:
    a, _ = certificates.self_signed(tmp_path / "a", ["10.1.2.3"], NOW)
    b, _ = certificates.self_signed(tmp_path / "b", ["10.1.2.3"], NOW)
    assert certificates.load(a.cert_file, a.key_file).sha256 == a.sha256
    with pytest.raises(CertificateError, match="is not the private key of"):
        certificates.load(a.cert_file, b.key_file)
    with pytest.raises(CertificateError, match="cannot read"):
        certificates.load(tmp_path / "missing.pem", a.key_file)
