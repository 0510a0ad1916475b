from __future__ import annotations

import time

import jwt
import pytest

from mediaplane.control.auth import (
    Grants,
    PermissionDenied,
    TokenError,
    mint_token,
    verify_token,
)

KEYS = {"key1": "s" * 32, "key2": "t" * 32}


def _token(**kw: object) -> str:
    args: dict[str, object] = {
        "api_key": "key1",
        "api_secret": KEYS["key1"],
        "identity": "alice",
        "grants": Grants(room="r1", room_join=True),
    }
    args.update(kw)
    return mint_token(**args)  # type: ignore[arg-type]


def test_round_trip_carries_identity_and_grants() -> None:
    p = verify_token(_token(name="Alice"), KEYS)
    assert (p.identity, p.name, p.api_key) == ("alice", "Alice", "key1")
    p.require_room("r1", join=True)
    with pytest.raises(PermissionDenied):
        p.require_room("r2", join=True)
    with pytest.raises(PermissionDenied):
        p.require_room_admin("r1")


def test_expired_and_not_yet_valid_are_refused_beyond_skew() -> None:
    old = _token(ttl_s=60, now=time.time() - 3600)
    with pytest.raises(TokenError, match="expired"):
        verify_token(old, KEYS)
    future = _token(now=time.time() + 3600)
    with pytest.raises(TokenError, match="not yet valid"):
        verify_token(future, KEYS)
    # Within the skew a token is still accepted.
    verify_token(_token(now=time.time() + 5), KEYS)


def test_wrong_secret_unknown_key_and_alg_none_are_refused() -> None:
    with pytest.raises(TokenError):
        verify_token(_token(api_secret=KEYS["key2"]), KEYS)
    with pytest.raises(TokenError, match="unknown API key"):
        verify_token(_token(api_key="nokey"), KEYS)
    claims = jwt.decode(_token(), options={"verify_signature": False})
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(TokenError):
        verify_token(unsigned, KEYS)
    with pytest.raises(TokenError, match="malformed"):
        verify_token("not-a-jwt", KEYS)


def test_publish_sources_and_record_grants() -> None:
    p = verify_token(_token(grants=Grants(room="r1", can_publish_sources=["audio"])), KEYS)
    assert p.grants.may_publish("audio")
    assert not p.grants.may_publish("video")
    with pytest.raises(PermissionDenied):
        p.require_record("r1")
    rec = verify_token(_token(grants=Grants(room="r1", room_record=True)), KEYS)
    rec.require_record("r1")
    with pytest.raises(PermissionDenied):
        rec.require_record("r2")


def test_ttl_is_bounded() -> None:
    with pytest.raises(ValueError):
        _token(ttl_s=0)
