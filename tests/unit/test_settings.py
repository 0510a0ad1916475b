from __future__ import annotations

import pytest
from pydantic import ValidationError

from mediaplane.settings import DEV_API_SECRET, DEV_SFU_SECRET, Settings


def test_dev_and_test_get_development_secrets() -> None:
    s = Settings(env="test")
    assert s.secret("sfu_secret") == DEV_SFU_SECRET
    assert s.secret("api_secret") == DEV_API_SECRET


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
    )
    assert s.sfu_env()["MEDIAPLANE_SFU_SECRET"] == "s" * 40
    assert s.sfu_env()["MEDIAPLANE_ENV"] == "production"


def test_port_range_must_be_ordered() -> None:
    with pytest.raises(ValidationError):
        Settings(env="test", rtc_min_port=50000, rtc_max_port=40000)
