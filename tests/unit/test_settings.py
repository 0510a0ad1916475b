from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from mediaplane.settings import DEV_API_SECRET, DEV_DEFAULTS, DEV_SFU_SECRET, Settings


@pytest.fixture(autouse=True)
def _no_secrets_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests say which secrets a process gets when none is configured."""
    for name in ("SFU_SECRET", "API_SECRET", "MEDIA_SECRET", "WEBHOOK_SECRET", "TURN_SECRET"):
        monkeypatch.delenv(f"MEDIAPLANE_{name}", raising=False)


def test_test_env_gets_the_repository_constants_on_loopback() -> None:
    s = Settings(env="test")
    assert s.secret("sfu_secret") == DEV_SFU_SECRET
    assert s.secret("api_secret") == DEV_API_SECRET


def test_dev_generates_secrets_once_into_a_private_file_and_reuses_them(tmp_path: Path) -> None:
    first = Settings(env="dev", data_dir=tmp_path)
    values = {n: first.secret(n) for n in ("sfu_secret", "api_secret", "media_secret",
                                          "webhook_secret", "turn_secret")}  # fmt: skip
    assert not set(values.values()) & DEV_DEFAULTS
    assert len(set(values.values())) == 5 and all(len(v) >= 40 for v in values.values())
    assert stat.S_IMODE(first.secrets_file.stat().st_mode) == 0o600
    again = Settings(env="dev", data_dir=tmp_path, api_secret=DEV_API_SECRET)  # a constant: no
    assert again.secret("api_secret") == values["api_secret"]
    exposed = Settings(env="dev", data_dir=tmp_path, host="10.1.2.3")
    assert exposed.secret("sfu_secret") == values["sfu_secret"]
    first.secrets_file.chmod(0o644)
    with pytest.raises(ValidationError, match="readable by others"):
        Settings(env="dev", data_dir=tmp_path)


@pytest.mark.parametrize(
    "where",
    [{"host": "0.0.0.0"}, {"host": "192.0.2.7"}, {"rtc_announced_address": "198.51.100.1"},
     {"sfu_host": "10.0.0.1"}, {"media_rtp_ip": "::"}],
)  # fmt: skip
def test_the_repository_constants_are_refused_off_loopback(where: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="non-loopback"):
        Settings(env="test", **where)  # type: ignore[arg-type]
    own = {n: "x" * 40 for n in ("sfu_secret", "api_secret", "media_secret", "webhook_secret",
                                 "turn_secret")}  # fmt: skip
    assert Settings(env="test", **where, **own).exposed_addresses()  # type: ignore[arg-type]
    assert Settings(env="test", host="127.0.0.2", media_host="localhost", sfu_host="::1")


@pytest.mark.parametrize(
    ("sfu", "api"),
    [
        (None, "p" * 40),
        ("s" * 40, None),
        (DEV_SFU_SECRET, "p" * 40),
        ("s" * 40, DEV_API_SECRET),
        ("s" * 40, "short"),
    ],
)
def test_production_refuses_missing_default_or_weak_secrets(
    sfu: str | None, api: str | None
) -> None:
    with pytest.raises(ValidationError):
        Settings(env="production", sfu_secret=sfu, api_secret=api)


def test_production_accepts_real_secrets_and_passes_them_to_the_sfu() -> None:
    s = Settings(
        env="production",
        sfu_secret="s" * 40,
        api_secret="p" * 40,
        media_secret="m" * 40,
        webhook_secret="w" * 40,
        turn_secret="t" * 40,
    )
    assert s.sfu_env()["MEDIAPLANE_SFU_SECRET"] == "s" * 40
    assert s.sfu_env()["MEDIAPLANE_ENV"] == "production"


def test_port_range_must_be_ordered() -> None:
    with pytest.raises(ValidationError):
        Settings(env="test", rtc_min_port=50000, rtc_max_port=40000)


def test_open_join_is_off_unless_set_and_refused_off_loopback() -> None:
    real = {f"{n}_secret": "x" * 40 for n in ("sfu", "api", "media", "webhook", "turn")}
    assert Settings(env="dev", **real).open_join is False  # type: ignore[arg-type]
    assert Settings(env="test", open_join=True).open_join is True
    for where in ({"host": "0.0.0.0"}, {"rtc_announced_address": "203.0.113.5"}):
        with pytest.raises(ValidationError, match="MEDIAPLANE_OPEN_JOIN"):
            Settings(env="test", open_join=True, **real, **where)  # type: ignore[arg-type]
        assert Settings(env="test", **real, **where).open_join is False  # type: ignore[arg-type]


def test_a_secrets_file_of_an_older_version_gets_the_turn_secret_added(tmp_path: Path) -> None:
    old = {n: f"{n}-" + "v" * 40 for n in ("sfu_secret", "api_secret", "media_secret",
                                          "webhook_secret")}  # fmt: skip
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(old))
    path.chmod(0o600)
    s = Settings(env="dev", data_dir=tmp_path)
    assert s.secret("api_secret") == old["api_secret"]  # kept
    turn = s.secret("turn_secret")
    assert len(turn) >= 40 and turn not in DEV_DEFAULTS
    assert Settings(env="dev", data_dir=tmp_path).secret("turn_secret") == turn  # once
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_turn_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="turn_min_port"):
        Settings(env="test", turn_min_port=60000, turn_max_port=50000)
    with pytest.raises(ValidationError, match="turn_realm"):
        Settings(env="test", turn_realm="a b")
    assert Settings(env="test", rtc_server_port=40000).sfu_env()["MEDIAPLANE_RTC_SERVER_PORT"] == (
        "40000"
    )
