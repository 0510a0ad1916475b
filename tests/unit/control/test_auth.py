from __future__ import annotations

import time

import jwt
import pytest

from mediaplane.control.auth import (
    MAX_TOKEN_BYTES,
    MAX_TTL_S,
    Grants,
    PermissionDenied,
    Principal,
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


def _signed(claims: dict[str, object]) -> str:
    """A token signed with a valid key but made outside mint_token (which caps its ttl)."""
    return jwt.encode(claims, KEYS["key1"], algorithm="HS256")


def _claims(**extra: object) -> dict[str, object]:
    t = int(time.time())
    claims: dict[str, object] = {"iss": "key1", "sub": "alice", "iat": t, "nbf": t, "exp": t + 60}
    return {**claims, "jti": "j1", "grants": {"room": "r1"}, **extra}


def test_a_validly_signed_token_with_a_ten_year_lifetime_is_refused() -> None:
    t = int(time.time())
    claims = _claims(exp=t + 10 * 365 * 86400)
    with pytest.raises(TokenError, match="lifetime"):
        verify_token(_signed(claims), KEYS)
    claims["exp"] = t + MAX_TTL_S  # the longest mint_token makes is still fine
    assert verify_token(_signed(claims), KEYS).identity == "alice"


def test_an_oversized_token_is_refused_before_it_is_decoded() -> None:
    claims = _claims(pad="x" * 1_000_000)
    with pytest.raises(TokenError, match="longer than"):
        verify_token(_signed(claims), KEYS)
    assert len(_token()) < MAX_TOKEN_BYTES / 4


def test_a_grant_update_gives_only_what_the_caller_holds() -> None:
    def who(**grants: object) -> Principal:
        return Principal(identity="x", name="x", api_key="k", grants=Grants(**grants))  # type: ignore[arg-type]

    room_admin = who(room="r", room_admin=True)
    room_admin.require_may_grant("r", Grants(room="r", room_join=True, room_record=True))
    for flag in ("room_create", "room_list"):
        with pytest.raises(PermissionDenied, match=f"cannot grant {flag}"):
            room_admin.require_may_grant("r", Grants(room="r", **{flag: True}))  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        room_admin.require_may_grant("other", Grants(room="other", room_join=True))
    who(room_create=True).require_may_grant("r", Grants(room="r", room_create=True))
    with pytest.raises(PermissionDenied, match="cannot grant room_create"):
        who(room="r", room_admin=True, room_list=True).require_may_grant(
            "r", Grants(room="r", room_list=True, room_create=True)
        )
