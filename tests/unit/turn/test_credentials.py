from __future__ import annotations

import base64
import hashlib
import hmac

from mediaplane.settings import Settings
from mediaplane.turn.credentials import ice_servers, mint, tls_port, turn_address, turn_enabled

SECRET = "s" * 40


def test_credentials_follow_the_turn_rest_api_scheme() -> None:
    username, credential = mint(SECRET, "alice", 600, now=1_700_000_000)
    assert username == "1700000600:alice"
    expected = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(credential) == expected
    # later joins get later expiries and other credentials
    later = mint(SECRET, "alice", 600, now=1_700_000_001)
    assert later[0] == "1700000601:alice" and later[1] != credential
    # another secret, another credential
    assert mint("t" * 40, "alice", 600, now=1_700_000_000)[1] != credential


def test_an_identity_is_reduced_to_header_safe_characters() -> None:
    username, _ = mint(SECRET, 'Bob "the" <admin>; rel=x ' + "é" * 100, 60, now=0)
    expiry, _, who = username.partition(":")
    assert expiry == "60" and len(who) == 64
    assert set(who) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
    assert mint(SECRET, "", 60, now=0)[0] == "60:_"


def test_ice_servers_on_the_announced_address_udp_tcp_then_tls() -> None:
    s = Settings(
        env="test", rtc_listen_ip="127.0.0.1", rtc_announced_address="127.0.0.5", turn=True,
        turn_port=3479, turn_tls_port=8443, turn_secret=SECRET, turn_credential_ttl_s=120,
    )  # fmt: skip
    [server] = ice_servers(s, "alice", now=1000)
    assert server.urls == [
        "turn:127.0.0.5:3479?transport=udp",
        "turn:127.0.0.5:3479?transport=tcp",
        "turns:127.0.0.5:8443?transport=tcp",
    ]
    assert (server.username, server.credential) == mint(SECRET, "alice", 120, now=1000)
    v6 = Settings(env="test", rtc_listen_ip="::1", turn=True, turn_tls_port=5349)
    assert ice_servers(v6, "a")[0].urls[0] == "turn:[::1]:3478?transport=udp"


def test_turn_is_off_on_loopback_unless_asked() -> None:
    assert not turn_enabled(Settings(env="test"))
    assert ice_servers(Settings(env="test"), "alice") == []
    assert turn_enabled(Settings(env="test", turn=True))
    own = {"sfu_secret": SECRET, "api_secret": SECRET, "media_secret": SECRET,
           "webhook_secret": SECRET, "turn_secret": SECRET}  # fmt: skip
    lan = Settings(env="test", rtc_listen_ip="10.1.2.3", **own)  # type: ignore[arg-type]
    assert turn_address(lan) == "10.1.2.3" and turn_enabled(lan)
    assert not turn_enabled(Settings(env="test", rtc_listen_ip="10.1.2.3", turn=False, **own))  # type: ignore[arg-type]


def test_the_tls_port_is_the_setting_or_derived_the_same_way_everywhere() -> None:
    assert tls_port(Settings(env="test", turn_tls_port=8443)) == 8443
    assert tls_port(Settings(env="test")) in (443, 5349)
    assert tls_port(Settings(env="test")) == tls_port(Settings(env="test"))
