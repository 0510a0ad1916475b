"""A real HTTP receiver of our webhooks, for tests (uvicorn, in this event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mediaplane.settings import SERVER_KEEP_ALIVE_S
from mediaplane.state.redis_server import free_tcp_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class WebhookReceiver:
    port: int = 0
    fail_first: int = 0  # fail this many attempts of every event
    received: list[Received] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)  # per Webhook-Id
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    _cond: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        event_id = request.headers.get("webhook-id", "")
        self.attempts[event_id] = self.attempts.get(event_id, 0) + 1
        if self.attempts[event_id] <= self.fail_first:
            return PlainTextResponse("try again", status_code=500)
        async with self._cond:
            self.received.append(Received(dict(request.headers), body))
            self._cond.notify_all()
        return PlainTextResponse("ok")

    async def start(self) -> WebhookReceiver:
        self.port = free_tcp_port()
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                timeout_keep_alive=SERVER_KEEP_ALIVE_S,
            )
        )
        self._task = asyncio.create_task(self._server.serve())
        # uvicorn offers no event for "listening"; poll its flag.
        while not self._server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return self

    async def wait_for(
        self, event: str, where: Any = lambda d: True, timeout: float = 15
    ) -> Received:
        async with asyncio.timeout(timeout), self._cond:
            while True:
                for r in self.received:
                    if r.json["event"] == event and where(r.json["data"]):
                        return r
                await self._cond.wait()

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
