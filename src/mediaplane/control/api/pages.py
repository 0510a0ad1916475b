"""The web pages (built into src/mediaplane/web/static by web/build.mjs) and the
open-join token endpoint the call page uses when no token link is given."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from mediaplane.control.auth import Grants, PermissionDenied, mint_token
from mediaplane.control.deps import SettingsDep
from mediaplane.control.errors import TooManyRequests
from mediaplane.control.rate_limit import RateLimit
from mediaplane.control.security_headers import PAGE_HEADERS
from mediaplane.wire.ids import NAME_PATTERN

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
router = APIRouter()


@router.get("/", include_in_schema=False)
async def call_page() -> FileResponse:
    return FileResponse(STATIC / "call.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/admin", include_in_schema=False)
async def admin_page() -> FileResponse:
    return FileResponse(STATIC / "admin.html", media_type="text/html", headers=PAGE_HEADERS)


class JoinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    room: str = Field(pattern=NAME_PATTERN)
    name: str = Field(min_length=1, max_length=64)


class JoinToken(BaseModel):
    token: str
    identity: str


@router.post("/api/dev/token", response_model=JoinToken, tags=["tokens"])
async def open_join_token(body: JoinRequest, settings: SettingsDep, request: Request) -> JoinToken:
    """A participant token for anyone: only with MEDIAPLANE_OPEN_JOIN=true (loopback only),
    at most MEDIAPLANE_OPEN_JOIN_PER_MINUTE per client address."""
    if not settings.open_join:
        raise PermissionDenied("open join is disabled: ask for a token link")
    limit: RateLimit = request.app.state.open_join_limit
    address = request.client.host if request.client else "?"
    if not limit.allow(address):
        wait = limit.retry_after_s(address)
        raise TooManyRequests(
            f"at most {limit.per_window} open-join tokens a minute from one address; "
            f"try again in {wait:.0f} s"
        )
    slug = re.sub(r"[^A-Za-z0-9_.-]", "-", body.name)[:40].strip("-.") or "guest"
    identity = f"{slug}-{secrets.token_hex(3)}"
    token = mint_token(
        api_key=settings.api_key,
        api_secret=settings.secret("api_secret"),
        identity=identity,
        name=body.name,
        grants=Grants(room=body.room, room_join=True),
    )
    return JoinToken(token=token, identity=identity)
