from __future__ import annotations

from pathlib import Path

import pytest

from mediaplane import certificates
from mediaplane.settings import Settings
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


def test_the_announced_address_is_the_one_source_for_coturn_and_the_sfu(tmp_path: Path) -> None:
    s = Settings(env="test", data_dir=tmp_path, rtc_listen_ip="10.0.0.5",
                 announced_address="203.0.113.7", **OWN)  # type: ignore[arg-type]  # fmt: skip
    assert s.sfu_env()["MEDIAPLANE_RTC_ANNOUNCED_ADDRESS"] == "203.0.113.7"
    conf = TurnConfig.from_settings(s)
    assert conf.announced == "203.0.113.7"
    assert "external-ip=203.0.113.7/10.0.0.5" in options(conf.render())
    # a DNS name: coturn gets the address it resolves to, the certificate names both
    named = Settings(env="test", data_dir=tmp_path, rtc_listen_ip="127.0.0.1",
                     announced_address="localhost", **OWN)  # type: ignore[arg-type]  # fmt: skip
    conf = TurnConfig.from_settings(named)
    assert conf.announced == "127.0.0.1"
    made = certificates.load(conf.cert, conf.key)
    assert made.covers("localhost") and made.covers("127.0.0.1")


def test_the_control_planes_certificate_is_presented_when_there_is_one(tmp_path: Path) -> None:
    s = Settings(env="test", data_dir=tmp_path, rtc_listen_ip="10.1.2.3", **OWN)  # type: ignore[arg-type]
    control, _ = certificates.self_signed(tmp_path / "tls", ["10.1.2.3"])
    conf = TurnConfig.from_settings(s, control)
    assert (conf.cert, conf.key) == (control.cert_file, control.key_file)
    assert not (tmp_path / "turn").exists()  # nothing of its own made


def test_without_one_a_self_signed_certificate_is_made_once_and_reused(tmp_path: Path) -> None:
    s = Settings(env="test", data_dir=tmp_path, rtc_listen_ip="10.1.2.3", **OWN)  # type: ignore[arg-type]
    first = TurnConfig.from_settings(s)
    made = certificates.load(first.cert, first.key)
    assert made.covers("10.1.2.3") and first.cert.parent == tmp_path / "turn"
    assert (first.key.stat().st_mode & 0o777) == 0o600
    before = first.cert.read_bytes()
    assert TurnConfig.from_settings(s).cert.read_bytes() == before
    other = Settings(env="test", data_dir=tmp_path, rtc_listen_ip="10.9.9.9", **OWN)  # type: ignore[arg-type]
    assert TurnConfig.from_settings(other).cert.read_bytes() != before  # another address


def test_a_configured_certificate_is_used_as_is(tmp_path: Path) -> None:
    c, k = tmp_path / "c.pem", tmp_path / "k.pem"
    s = Settings(env="test", data_dir=tmp_path, tls_cert_file=c, tls_key_file=k)
    conf = TurnConfig.from_settings(s)
    assert (conf.cert, conf.key) == (c, k)
    assert not (tmp_path / "turn").exists()


def test_turn_may_not_take_the_control_planes_port(tmp_path: Path) -> None:
    for clash in ({"turn_tls_port": 8443}, {"turn_port": 8443}):
        s = Settings(env="test", data_dir=tmp_path, rtc_listen_ip="10.1.2.3", port=8443,
                     **clash, **OWN)  # type: ignore[arg-type]  # fmt: skip
        with pytest.raises(ValueError, match="MEDIAPLANE_PORT"):
            TurnConfig.from_settings(s)
