"""The whole system for recording tests: control plane + media manager + webhook receiver."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mediaplane.settings import Settings
from mediaplane.sfu import SfuProcess
from tests.support.control import ControlInstance, admin
from tests.support.media import SECRET, MediaService
from tests.support.webhook_receiver import WebhookReceiver

WEBHOOK_SECRET = "test-webhook-secret-0123456789"


@dataclass
class Stack:
    settings: Settings
    control: ControlInstance
    media: MediaService
    hooks: WebhookReceiver
    sfu_url: str
    redis_url: str

    def http(self, tok: str | None = None) -> httpx.AsyncClient:
        tok = tok or admin(self.settings)
        return httpx.AsyncClient(
            base_url=self.control.http, headers={"Authorization": f"Bearer {tok}"}, timeout=60
        )


@contextlib.asynccontextmanager
async def system(
    tmp_path: Path, sfu: SfuProcess, redis_url: str, *, control_allow: list[str],
    media_allow: list[str], **settings: Any,
) -> AsyncIterator[Stack]:  # fmt: skip
    """A control plane and a media manager of the test's own, with these outbound
    allow-lists (MEDIAPLANE_OUTBOUND_ALLOW) and more `settings`."""
    data = tmp_path / "data"
    media = await MediaService.start(
        data, extra_env={"MEDIAPLANE_OUTBOUND_ALLOW": json.dumps(media_allow)}
    )
    hooks = await WebhookReceiver().start()
    made = Settings(
        env="test", data_dir=data, media_port=media.port, media_secret=SECRET,
        webhook_urls=[hooks.url], webhook_secret=WEBHOOK_SECRET, outbound_allow=control_allow,
        **settings,
    )  # fmt: skip
    control = await ControlInstance.start(made, sfu_url=sfu.url, redis_url=redis_url)
    try:
        yield Stack(made, control, media, hooks, sfu.url, redis_url)
    finally:
        await control.stop()
        await hooks.stop()
        await media.stop()
