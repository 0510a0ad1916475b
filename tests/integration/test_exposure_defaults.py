"""Defaults that are safe to put on a network (issue 17 item 7): the repository's
development secrets are refused off loopback, Redis wants a password, and a control plane
announced on a network serves no API docs unless asked."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ResponseError

from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.support.control import ControlInstance

pytestmark = pytest.mark.integration

SECRETS = ("SFU_SECRET", "API_SECRET", "MEDIA_SECRET", "WEBHOOK_SECRET", "TURN_SECRET")


@pytest.mark.parametrize(
    "module", ["mediaplane.control", "mediaplane.media", "mediaplane.sfu.node"]
)
async def test_services_refuse_the_repository_secrets_on_a_network_address(
    module: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k.removeprefix("MEDIAPLANE_") not in SECRETS}
    # 192.0.2.0/24 is TEST-NET-1: the check refuses before anything binds or connects.
    net = "192.0.2.10"
    env |= {"MEDIAPLANE_ENV": "test", "MEDIAPLANE_HOST": net, "MEDIAPLANE_MEDIA_HOST": net,
            "MEDIAPLANE_SFU_HOST": net, "MEDIAPLANE_REDIS_URL": "redis://127.0.0.1:1",
            "MEDIAPLANE_DATA_DIR": str(tmp_path)}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0
    text = out.decode()
    assert "development secrets" in text and "192.0.2.10" in text, text[-2000:]


async def test_redis_wants_the_password_it_was_started_with(redis_server: RedisServer) -> None:
    assert redis_server.password and redis_server.password in redis_server.url
    anonymous = aioredis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        with pytest.raises((AuthenticationError, ResponseError), match=r"(?i)auth"):
            await anonymous.get("anything")
    finally:
        await anonymous.aclose()


async def test_a_control_plane_on_a_network_address_serves_no_api_docs(
    sfu: SfuProcess, redis_server: RedisServer
) -> None:
    # Set for a network address (the suite's own secrets, tests/conftest.py), served on
    # loopback here: what it serves is decided by the setting, not by the socket.
    exposed = Settings(env="test", host="192.0.2.10")
    assert not exposed.api_docs_enabled
    urls = {"sfu_url": sfu.url, "redis_url": redis_server.url}
    async with ControlInstance.running(exposed, **urls) as c, _http(c) as http:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await http.get(path)).status_code == 404, path
        assert (await http.get("/metrics")).status_code == 200  # from this machine
    async with ControlInstance.running(Settings(env="test"), **urls) as c, _http(c) as http:
        assert (await http.get("/openapi.json")).status_code == 200


def _http(control: ControlInstance) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=control.http, timeout=10)
