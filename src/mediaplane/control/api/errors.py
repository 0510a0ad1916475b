"""The REST API's one error-to-reply point: every error becomes {error: {code, message}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mediaplane.control.auth import PermissionDenied, TokenError
from mediaplane.control.errors import ControlError
from mediaplane.http_errors import error_reply, install_common
from mediaplane.sfu import SfuRpcError

log = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    @app.exception_handler(TokenError)
    async def token_error(_: Request, e: TokenError) -> JSONResponse:
        return error_reply(401, "unauthorized", str(e))

    @app.exception_handler(PermissionDenied)
    async def forbidden(_: Request, e: PermissionDenied) -> JSONResponse:
        return error_reply(403, "forbidden", str(e))

    @app.exception_handler(ControlError)
    async def control_error(_: Request, e: ControlError) -> JSONResponse:
        return error_reply(e.status, e.code, e.message)

    @app.exception_handler(SfuRpcError)
    async def sfu_error(_: Request, e: SfuRpcError) -> JSONResponse:
        return error_reply(502, "sfu_error", e.message)

    install_common(app)
