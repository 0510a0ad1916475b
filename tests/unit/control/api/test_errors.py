"""The REST error point (control/api/errors.py): Redis out of reach is a JSON 503 that does
not say where Redis is, however it reaches the point; anything else is a JSON 500."""

from __future__ import annotations

import logging

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from mediaplane.control.api import errors
from mediaplane.control.rooms.guard import redis_call

WHERE = "10.1.2.3:6380"


def app() -> FastAPI:
    a = FastAPI()
    errors.install(a)

    async def refused() -> None:
        raise aioredis.ConnectionError(f"Error 111 connecting to {WHERE}. Connection refused.")

    @a.get("/raw")
    async def raw() -> None:
        await refused()  # a route that calls the store directly

    @a.get("/guarded")
    async def guarded() -> None:
        await redis_call(refused())

    @a.get("/timeout")
    async def timeout() -> None:
        raise aioredis.TimeoutError(f"Timeout reading from {WHERE}")

    @a.get("/bug")
    async def bug() -> None:
        raise KeyError("oops")

    return a


def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.mark.parametrize("path", ["/raw", "/guarded", "/timeout"])
async def test_redis_down_is_a_json_503_without_the_address(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        async with client() as http:
            r = await http.get(path)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "unavailable"
    assert "Redis" in r.json()["error"]["message"]
    assert WHERE not in r.text and "6380" not in r.text
    assert any(f"unavailable GET {path}" in m for m in caplog.messages), caplog.messages
    assert not [m for m in caplog.messages if WHERE in m]


async def test_a_bug_is_a_json_500() -> None:
    async with client() as http:
        r = await http.get("/bug")
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal", "message": "internal error"}}
