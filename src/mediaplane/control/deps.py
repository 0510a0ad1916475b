"""FastAPI dependencies: the app's services and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mediaplane.control.auth import Principal, TokenError, verify_token
from mediaplane.control.rooms import RoomManager
from mediaplane.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An access token (JWT) minted with an API key")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_rooms(request: Request) -> RoomManager:
    rooms: RoomManager = request.app.state.rooms
    return rooms


def api_keys(settings: Settings) -> dict[str, str]:
    return {settings.api_key: settings.secret("api_secret")}


def get_principal(
    settings: Annotated[Settings, Depends(get_settings)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if creds is None:
        raise TokenError("missing bearer token")
    return verify_token(creds.credentials, api_keys(settings))


SettingsDep = Annotated[Settings, Depends(get_settings)]
RoomsDep = Annotated[RoomManager, Depends(get_rooms)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
