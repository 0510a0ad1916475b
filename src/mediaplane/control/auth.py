"""Access tokens: JWT (HS256) carrying an identity and per-room grants.

Modelled on LiveKit's tokens: a token is minted with an API key's secret, names
the key in `iss`, the participant in `sub`, and carries a `grants` claim. Every
REST call and every signaling message is checked against those grants.

Errors: `TokenError` (bad signature, expired, not yet valid, unknown key,
malformed claims) -> 401 at the REST boundary and close code 4401 on the
signaling socket; `PermissionDenied` (valid token, grant missing) -> 403 and
an error reply with code `forbidden`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Literal

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ALGORITHM = "HS256"
CLOCK_SKEW_S = 10
MAX_TTL_S = 7 * 24 * 3600
# A token with every grant and a long name is under 1 KiB; anything far larger is not ours.
MAX_TOKEN_BYTES = 4096

TrackSource = Literal["audio", "video", "screen"]


class TokenError(Exception):
    """The token cannot be accepted (signature, time window, key or shape)."""


class PermissionDenied(Exception):
    """The token is valid but does not grant this action."""


class Grants(BaseModel):
    """What the bearer may do. Room-scoped grants need `room` to match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    room: str | None = Field(default=None, description="The room these grants apply to")
    room_join: bool = False
    room_admin: bool = Field(default=False, description="Manage the room and its participants")
    room_create: bool = Field(default=False, description="Create and delete rooms (any room)")
    room_list: bool = Field(default=False, description="List rooms and read any room")
    room_record: bool = Field(default=False, description="Start and stop recordings")
    hls_view: bool = Field(
        default=False, description="Watch the room's HLS egress (playlist and segments)"
    )
    can_publish: bool = True
    can_publish_sources: list[TrackSource] | None = Field(
        default=None, description="Sources the bearer may publish; None means all"
    )
    can_subscribe: bool = True
    can_publish_data: bool = True

    def may_publish(self, source: TrackSource) -> bool:
        if not self.can_publish:
            return False
        return self.can_publish_sources is None or source in self.can_publish_sources


class TokenClaims(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    iss: str
    sub: str = Field(min_length=1, max_length=128)
    name: str = Field(default="", max_length=128)
    exp: int
    nbf: int
    iat: int
    jti: str
    grants: Grants

    @property
    def identity(self) -> str:
        return self.sub


class Principal(BaseModel):
    """The authenticated caller, as the rest of the control plane sees it."""

    model_config = ConfigDict(frozen=True)

    identity: str
    name: str
    api_key: str
    grants: Grants

    def require_room(self, room: str, *, join: bool = False) -> None:
        """The bearer may act in `room` (join it when `join`)."""
        g = self.grants
        if g.room_create or g.room_list:
            if join and not g.room_join:
                raise PermissionDenied("token does not grant room_join")
            return
        if g.room != room:
            raise PermissionDenied(f"token is not valid for room {room!r}")
        if join and not g.room_join:
            raise PermissionDenied("token does not grant room_join")

    def administers(self, room: str) -> bool:
        g = self.grants
        return g.room_create or (g.room_admin and g.room == room)

    def require_room_admin(self, room: str) -> None:
        if not self.administers(room):
            raise PermissionDenied(f"token does not grant room_admin for {room!r}")

    def require_record(self, room: str) -> None:
        g = self.grants
        if g.room_create or (g.room == room and (g.room_record or g.room_admin)):
            return
        raise PermissionDenied(f"token does not grant room_record for {room!r}")

    def require_hls_view(self, room: str) -> None:
        g = self.grants
        if g.room_create or (g.room == room and (g.hls_view or g.room_record or g.room_admin)):
            return
        raise PermissionDenied(f"token does not grant hls_view or room_record for {room!r}")

    def require_may_grant(self, room: str, grants: Grants) -> None:
        """A grant update gives only what the caller holds for `room`: an admin of one room
        cannot hand out server-wide grants (room_create, room_list) it does not have."""
        self.require_room_admin(room)
        g = self.grants
        beyond = [
            flag
            for flag in ("room_create", "room_list")
            if getattr(grants, flag) and not (getattr(g, flag) or g.room_create)
        ]
        if beyond:
            raise PermissionDenied(
                f"cannot grant {', '.join(beyond)}: the caller's token does not hold it"
            )

    def require(self, flag: Literal["room_create", "room_list"]) -> None:
        if not getattr(self.grants, flag) and not self.grants.room_create:
            raise PermissionDenied(f"token does not grant {flag}")


def mint_token(
    *,
    api_key: str,
    api_secret: str,
    identity: str,
    grants: Grants,
    name: str = "",
    ttl_s: int = 6 * 3600,
    now: float | None = None,
) -> str:
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl must be within 1..{MAX_TTL_S} s")
    t = int(now if now is not None else time.time())
    claims = TokenClaims(
        iss=api_key,
        sub=identity,
        name=name or identity,
        exp=t + ttl_s,
        nbf=t,
        iat=t,
        jti=uuid.uuid4().hex,
        grants=grants,
    )
    return jwt.encode(claims.model_dump(mode="json"), api_secret, algorithm=ALGORITHM)


def verify_token(token: str, api_keys: Mapping[str, str], *, now: float | None = None) -> Principal:
    """Check size, signature, algorithm, time window (with skew), lifetime and claims.

    A token whose lifetime (exp - iat) is over MAX_TTL_S is refused even when it is
    validly signed: a leaked long-lived token must not stay usable for years.
    """
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError(f"token longer than {MAX_TOKEN_BYTES} bytes")
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise TokenError(f"malformed token: {e}") from None
    key = unverified.get("iss")
    if not isinstance(key, str) or key not in api_keys:
        raise TokenError("unknown API key")
    try:
        raw = jwt.decode(
            token,
            api_keys[key],
            algorithms=[ALGORITHM],
            leeway=CLOCK_SKEW_S,
            options={"require": ["exp", "nbf", "iat", "iss", "sub"]},
            issuer=key,
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("token not yet valid") from None
    except jwt.PyJWTError as e:
        raise TokenError(f"invalid token: {e}") from None
    if now is not None and raw["exp"] + CLOCK_SKEW_S < now:
        raise TokenError("token expired")
    lifetime = raw["exp"] - raw["iat"]
    if not isinstance(lifetime, int | float) or lifetime > MAX_TTL_S:
        raise TokenError(f"token lifetime over {MAX_TTL_S} s")
    try:
        claims = TokenClaims.model_validate(raw)
    except ValidationError as e:
        raise TokenError(f"invalid claims: {e.errors()[0]['msg']}") from None
    return Principal(identity=claims.sub, name=claims.name, api_key=key, grants=claims.grants)
