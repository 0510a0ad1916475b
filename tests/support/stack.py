"""The whole system for recording tests: control plane + media manager + webhook receiver."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from mediaplane.settings import Settings
from tests.support.control import ControlInstance, admin
from tests.support.media import MediaService
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
