"""The announced address, when TLS is on, and what `up` warns about."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from mediaplane import reachability
from mediaplane.reachability import ReachError, prepare
from mediaplane.settings import Settings


def make(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(env="test", data_dir=tmp_path, **kw)


def test_loopback_stays_plain_http_and_a_network_address_gets_https(tmp_path: Path) -> None:
    local = prepare(make(tmp_path))
    assert local.certificate is None and local.url.startswith("http://127.0.0.1:")
    assert local.warnings == []
    assert not (tmp_path / "tls").exists()
    net = prepare(make(tmp_path, host="0.0.0.0", announced_address="10.20.30.40"))
    assert net.certificate is not None and net.url == "https://10.20.30.40:8080"
    assert net.local_url == "https://127.0.0.1:8080"
    assert net.certificate.covers("10.20.30.40") and net.certificate.covers("127.0.0.1")
    # one announced on loopback while listening on loopback: https only when asked for
    assert prepare(make(tmp_path, tls="on")).url == "https://127.0.0.1:8080"
    assert prepare(make(tmp_path, host="10.20.30.40", tls="off")).certificate is None


def test_the_announced_address_defaults_from_the_sfu_or_the_listen_address() -> None:
    assert reachability.announced_address(Settings(env="test")) == "127.0.0.1"
    s = Settings(env="test", host="0.0.0.0", rtc_announced_address="10.1.1.1")
    assert reachability.announced_address(s) == "10.1.1.1"
    assert reachability.announced_address(Settings(env="test", host="10.2.2.2")) == "10.2.2.2"
    s = Settings(env="test", announced_address="[fd00::5]", rtc_announced_address="10.1.1.1")
    assert reachability.announced_address(s) == "fd00::5"
    assert reachability.url_host("fd00::5") == "[fd00::5]"
    # the SFU announces it too, unless its own setting says otherwise
    assert (
        Settings(env="test", announced_address="10.3.3.3").sfu_env()[
            "MEDIAPLANE_RTC_ANNOUNCED_ADDRESS"
        ]
        == "10.3.3.3"
    )
    assert s.sfu_env()["MEDIAPLANE_RTC_ANNOUNCED_ADDRESS"] == "10.1.1.1"


def test_a_name_that_does_not_resolve_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def getaddrinfo(host: str, *_: object, **__: object) -> list[Any]:
        if host == "media.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 0))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(ReachError, match=r"'nowhere\.invalid' is neither an IP address nor"):
        prepare(make(tmp_path, announced_address="nowhere.invalid"))
    ok = prepare(make(tmp_path, host="0.0.0.0", announced_address="media.example.test",
                      rtc_listen_ip="0.0.0.0"))  # fmt: skip
    assert ok.url == "https://media.example.test:8080" and ok.warnings == []
    assert ok.certificate is not None and ok.certificate.covers("media.example.test")


def test_up_warns_about_a_loopback_announcement_on_a_network_listener(tmp_path: Path) -> None:
    warned = prepare(make(tmp_path, host="0.0.0.0")).warnings
    assert len(warned) == 1 and "announced address 127.0.0.1 is loopback" in warned[0]
    assert "0.0.0.0" in warned[0] and "MEDIAPLANE_ANNOUNCED_ADDRESS" in warned[0]
    warned = prepare(make(tmp_path, host="10.4.4.4", announced_address="localhost")).warnings
    assert any("loopback while the control plane listens on 10.4.4.4" in w for w in warned)
    media = prepare(make(tmp_path, announced_address="10.5.5.5")).warnings
    assert any("MEDIAPLANE_RTC_LISTEN_IP" in w for w in media), media
    plain = prepare(make(tmp_path, host="0.0.0.0", announced_address="10.5.5.5",
                         rtc_listen_ip="0.0.0.0", tls="off")).warnings  # fmt: skip
    assert plain == [plain[0]] and "not a secure context" in plain[0]


def test_a_configured_certificate_is_used_and_checked(tmp_path: Path) -> None:
    made = prepare(make(tmp_path / "a", host="10.6.6.6")).certificate
    assert made is not None
    s = make(tmp_path / "b", host="10.6.6.6", tls_cert_file=made.cert_file,
             tls_key_file=made.key_file)  # fmt: skip
    used = prepare(s)
    assert used.certificate is not None and used.certificate.sha256 == made.sha256
    assert not used.certificate.generated and not (tmp_path / "b" / "tls").exists()
    other = make(tmp_path / "b", host="10.7.7.7", rtc_listen_ip="0.0.0.0",
                 tls_cert_file=made.cert_file, tls_key_file=made.key_file)  # fmt: skip
    assert any("not the announced address 10.7.7.7" in w for w in prepare(other).warnings)
    with pytest.raises(ReachError, match="set both"):
        prepare(make(tmp_path, host="10.6.6.6", tls_cert_file=made.cert_file))


def test_the_cli_trusts_the_systems_own_certificate(tmp_path: Path) -> None:
    s = make(tmp_path, tls="on")
    assert reachability.client_verify(s, check_hostname=False) is True  # none made yet
    prepare(s)
    ctx = reachability.client_verify(s, check_hostname=False)
    assert isinstance(ctx, ssl.SSLContext) and not ctx.check_hostname
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.get_ca_certs()  # the pinned certificate is an anchor
    assert reachability.client_verify(make(tmp_path), check_hostname=True) is True  # http
