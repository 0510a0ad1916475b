from __future__ import annotations

from pathlib import Path

from cryptography import x509

from mediaplane.settings import Settings
from mediaplane.turn.cert import self_signed
from mediaplane.turn.server import DENIED_PEERS, TurnConfig

SECRET = "s" * 40
OWN = {n: SECRET for n in ("sfu_secret", "api_secret", "media_secret", "webhook_secret",
                           "turn_secret")}  # fmt: skip


def options(text: str) -> list[str]:
    return text.splitlines()


def test_the_config_hardens_coturn_and_allows_exactly_the_sfu(tmp_path: Path) -> None:
    s = Settings(env="test", data_dir=tmp_path, rtc_listen_ip="10.213.7.2", turn_tls_port=443,
                 turn_user_quota=7, turn_total_quota=70, **OWN)  # type: ignore[arg-type]  # fmt: skip
    conf = TurnConfig.from_settings(s)
    lines = options(conf.render())
    for must in ("use-auth-secret", f"static-auth-secret={SECRET}", "fingerprint", "no-cli",
                 "no-multicast-peers", "no-tlsv1", "no-tlsv1_1", "no-dtls", "realm=mediaplane",
                 "user-quota=7", "total-quota=70", "listening-port=3478",
                 "tls-listening-port=443", "listening-ip=10.213.7.2", "relay-ip=10.213.7.2",
                 "min-port=50000", "max-port=59999"):  # fmt: skip
        assert must in lines, must
    denied = [line.split("=", 1)[1] for line in lines if line.startswith("denied-peer-ip=")]
    assert denied == list(DENIED_PEERS)
    for r in ("127.0.0.0-127.255.255.255", "10.0.0.0-10.255.255.255", "::1",
              "172.16.0.0-172.31.255.255", "192.168.0.0-192.168.255.255",
              "169.254.0.0-169.254.255.255"):  # fmt: skip
        assert r in denied
    assert [line for line in lines if line.startswith("allowed-peer-ip=")] == [
        "allowed-peer-ip=10.213.7.2"
    ]
    assert not [line for line in lines if line.startswith("external-ip")]


def test_an_announced_address_is_coturns_external_ip_and_an_allowed_peer(tmp_path: Path) -> None:
    s = Settings(env="test", data_dir=tmp_path, rtc_listen_ip="10.0.0.5",
                 rtc_announced_address="203.0.113.9", **OWN)  # type: ignore[arg-type]  # fmt: skip
    lines = options(TurnConfig.from_settings(s).render())
    assert "external-ip=203.0.113.9/10.0.0.5" in lines
    allowed = [line for line in lines if line.startswith("allowed-peer-ip=")]
    assert allowed == ["allowed-peer-ip=203.0.113.9", "allowed-peer-ip=10.0.0.5"]


def test_a_self_signed_certificate_is_made_once_for_the_address(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "10.1.2.3")
    assert (key.stat().st_mode & 0o777) == 0o600
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    before = cert.read_bytes()
    assert self_signed(tmp_path, "10.1.2.3") == (cert, key) and cert.read_bytes() == before
    self_signed(tmp_path, "10.9.9.9")  # another address: a new certificate
    assert cert.read_bytes() != before


def test_a_configured_certificate_is_used_as_is(tmp_path: Path) -> None:
    c, k = tmp_path / "c.pem", tmp_path / "k.pem"
    s = Settings(env="test", data_dir=tmp_path, turn_tls_cert=c, turn_tls_key=k)
    conf = TurnConfig.from_settings(s)
    assert (conf.cert, conf.key) == (c, k)
    assert not (tmp_path / "turn" / "turn-cert.pem").exists()
