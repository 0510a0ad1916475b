"""Fixtures that run the real SFU (Node + our mediasoup worker build)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mediaplane.settings import Settings
from mediaplane.sfu import SfuClient, SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.support.control import ControlInstance


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(env="test")


@pytest.fixture(scope="session")
async def sfu(settings: Settings) -> AsyncIterator[SfuProcess]:
    """One SFU with two workers for the whole session (tests use their own rooms)."""
    proc = await SfuProcess.start(settings, port=0, num_workers=2)
    try:
        yield proc
    finally:
        await proc.stop()


@pytest.fixture
async def client(sfu: SfuProcess) -> AsyncIterator[SfuClient]:
    c = await SfuClient.create(sfu.url, sfu.secret)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture(scope="session")
async def redis_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RedisServer]:
    server = await RedisServer.start(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
async def control(
    settings: Settings, sfu: SfuProcess, redis_server: RedisServer
) -> AsyncIterator[ControlInstance]:
    """One control-plane instance for the session."""
    inst = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis_server.url)
    try:
        yield inst
    finally:
        await inst.stop()


@pytest.fixture(scope="session")
async def control2(
    settings: Settings, sfu: SfuProcess, redis_server: RedisServer
) -> AsyncIterator[ControlInstance]:
    """A second instance sharing only Redis (and the SFU) with the first."""
    inst = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis_server.url)
    try:
        yield inst
    finally:
        await inst.stop()
