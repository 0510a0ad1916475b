"""The REST API's one error-to-reply point: every error becomes {error: {code, message}}.

Redis out of reach is a 503 `unavailable` on every route, whether the route's code
turned it into `Unavailable` (rooms/guard.py) or the Redis client's error reached
here; its reply and its log line never say where Redis is. Anything else unforeseen
is a JSON 500 (the traceback goes to the log).
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mediaplane.control.auth import PermissionDenied, TokenError
from mediaplane.control.errors import REDIS_UNAVAILABLE, ControlError, Unavailable
from mediaplane.http_errors import error_reply, install_common
from mediaplane.sfu import SfuRpcError

log = logging.getLogger(__name__)

# What the Redis client raises when the server is out of reach (loading, refused, reset,
# timed out); other Redis errors are bugs (500).
REDIS_DOWN = (aioredis.ConnectionError, aioredis.TimeoutError)


def unavailable(request: Request, message: str, cause: str = "") -> JSONResponse:
    log.warning("unavailable %s %s: %s%s", request.method, request.url.path, message, cause)
    return error_reply(Unavailable.status, Unavailable.code, message)


def install(app: FastAPI) -> None:
    @app.exception_handler(TokenError)
    async def token_error(_: Request, e: TokenError) -> JSONResponse:
        return error_reply(401, "unauthorized", str(e))

    @app.exception_handler(PermissionDenied)
    async def forbidden(_: Request, e: PermissionDenied) -> JSONResponse:
        return error_reply(403, "forbidden", str(e))

    @app.exception_handler(ControlError)
    async def control_error(request: Request, e: ControlError) -> JSONResponse:
        if isinstance(e, Unavailable):
            return unavailable(request, e.message)
        return error_reply(e.status, e.code, e.message)

    @app.exception_handler(SfuRpcError)
    async def sfu_error(_: Request, e: SfuRpcError) -> JSONResponse:
        return error_reply(502, "sfu_error", e.message)

    for error in REDIS_DOWN:

        @app.exception_handler(error)
        async def redis_down(request: Request, e: Exception) -> JSONResponse:
            return unavailable(request, REDIS_UNAVAILABLE, f" ({type(e).__name__})")

    @app.exception_handler(Exception)
    async def internal(request: Request, e: Exception) -> JSONResponse:
        # Starlette logs the traceback after this reply (uvicorn "Exception in ASGI app").
        return error_reply(500, "internal", "internal error")

    install_common(app)
