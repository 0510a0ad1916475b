"""REST: mint access tokens (the admin side of `mediaplane token`)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from mediaplane.control.auth import MAX_TTL_S, Grants, mint_token
from mediaplane.control.deps import PrincipalDep, SettingsDep
from mediaplane.wire.ids import NAME_PATTERN

router = APIRouter(prefix="/api/tokens", tags=["tokens"])


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identity: str = Field(pattern=NAME_PATTERN)
    name: str = Field(default="", max_length=128)
    grants: Grants
    ttl_s: int = Field(default=6 * 3600, ge=1, le=MAX_TTL_S)


class TokenResponse(BaseModel):
    token: str
    identity: str
    expires_in_s: int


@router.post("", response_model=TokenResponse)
async def create_token(
    body: TokenRequest, principal: PrincipalDep, settings: SettingsDep
) -> TokenResponse:
    """Mint a token for a participant (grant: room_create, i.e. a server-side admin)."""
    principal.require("room_create")
    token = mint_token(
        api_key=settings.api_key,
        api_secret=settings.secret("api_secret"),
        identity=body.identity,
        name=body.name,
        grants=body.grants,
        ttl_s=body.ttl_s,
    )
    return TokenResponse(token=token, identity=body.identity, expires_in_s=body.ttl_s)
