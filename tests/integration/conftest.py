"""Fixtures that run the real SFU (Node + our mediasoup worker build)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mediaplane.settings import Settings
from mediaplane.sfu import SfuClient, SfuProcess


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
