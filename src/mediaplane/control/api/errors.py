"""The REST API's one error-to-reply point: every error becomes {error: {code, message}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mediaplane.control.auth import PermissionDenied, TokenError
from mediaplane.control.errors import ControlError
from mediaplane.sfu import SfuRpcError

log = logging.getLogger(__name__)


def _reply(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(TokenError)
    async def token_error(_: Request, e: TokenError) -> JSONResponse:
        return _reply(401, "unauthorized", str(e))

    @app.exception_handler(PermissionDenied)
    async def forbidden(_: Request, e: PermissionDenied) -> JSONResponse:
        return _reply(403, "forbidden", str(e))

    @app.exception_handler(ControlError)
    async def control_error(_: Request, e: ControlError) -> JSONResponse:
        return _reply(e.status, e.code, e.message)

    @app.exception_handler(SfuRpcError)
    async def sfu_error(_: Request, e: SfuRpcError) -> JSONResponse:
        return _reply(502, "sfu_error", e.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        return _reply(422, "invalid_request", f"{where}: {err['msg']}")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException) -> JSONResponse:
        return _reply(e.status_code, "http_error", str(e.detail))
