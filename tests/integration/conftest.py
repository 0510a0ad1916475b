"""Fixtures that run the real SFU (Node + our mediasoup worker build)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from mediaplane.settings import Settings
from mediaplane.sfu import SfuClient, SfuProcess
from mediaplane.state.redis_server import RedisServer
from tests.support.chromium import chromium
from tests.support.control import ControlInstance
from tests.support.media import LOOPBACK_OUTBOUND, SECRET, MediaService
from tests.support.stack import WEBHOOK_SECRET, Stack
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture(scope="session")
def settings() -> Settings:
    # open_join: the call page's join form (browser tests) asks POST /api/dev/token.
    return Settings(env="test", open_join=True)


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
    async with ControlInstance.running(settings, sfu_url=sfu.url, redis_url=redis_server.url) as c:
        yield c


@pytest.fixture(scope="session")
async def control2(
    settings: Settings, sfu: SfuProcess, redis_server: RedisServer
) -> AsyncIterator[ControlInstance]:
    """A second instance sharing only Redis (and the SFU) with the first."""
    async with ControlInstance.running(settings, sfu_url=sfu.url, redis_url=redis_server.url) as c:
        yield c


@pytest.fixture
async def media(tmp_path: Path) -> AsyncIterator[MediaService]:
    """A media manager process of the test's own, with its own data folder."""
    service = await MediaService.start(tmp_path / "data")
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture(scope="session")
async def stack(
    sfu: SfuProcess, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    data = tmp_path_factory.mktemp("rec")
    media = await MediaService.start(data)
    hooks = await WebhookReceiver().start()
    settings = Settings(
        env="test", open_join=True, data_dir=data, media_port=media.port, media_secret=SECRET,
        webhook_urls=[hooks.url], webhook_secret=WEBHOOK_SECRET, webhook_backoff_s=0.2,
        outbound_allow=LOOPBACK_OUTBOUND,  # the test sources and RTMP servers are on loopback
    )  # fmt: skip
    control = await ControlInstance.start(settings, sfu_url=sfu.url, redis_url=redis_server.url)
    try:
        yield Stack(settings, control, media, hooks, sfu.url, redis_server.url)
    finally:
        await control.stop()
        await hooks.stop()
        await media.stop()


@pytest.fixture(scope="module")
async def module_chromium() -> AsyncIterator[Browser]:
    """One Chromium per test module (starting one costs seconds)."""
    async with chromium() as b:
        yield b


@pytest.fixture
async def browser(module_chromium: Browser) -> AsyncIterator[Browser]:
    """The module's Chromium; the pages a test opened are closed after it. (Pages left
    open go on sending and receiving media: a module's later tests then ran on a machine
    loaded by every earlier test's calls, and their pages missed heartbeats.)"""
    yield module_chromium
    for context in module_chromium.contexts:
        await context.close()
