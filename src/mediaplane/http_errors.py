"""The error body every mediaplane HTTP API answers with, and the handlers that
FastAPI's own errors (validation, HTTP exceptions) share across our services."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException


def error_reply(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """`{"error": {"code", "message"}}` with `status` (401 also says how to authenticate)."""
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def install_common(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        return error_reply(422, "invalid_request", f"{where}: {err['msg']}")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException) -> JSONResponse:
        # Keep the exception's headers: a 405 must say Allow (RFC 9110 15.5.6).
        return error_reply(e.status_code, "http_error", str(e.detail), e.headers)
