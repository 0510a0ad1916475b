"""Run real control-plane instances (uvicorn, in this event loop) for tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from mediaplane.control.auth import Grants, mint_token
from mediaplane.settings import SERVER_KEEP_ALIVE_S, Settings
from mediaplane.state.redis_server import free_tcp_port


@dataclass
class ControlInstance:
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int
    host: str = "127.0.0.1"

    @property
    def app(self) -> FastAPI:
        """The running app (its state: rooms, whip, ws_slots)."""
        app: FastAPI = self.server.config.app
        return app

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws(self, room: str) -> str:
        return f"ws://{self.host}:{self.port}/ws/rooms/{room}"

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        sfu_url: str,
        redis_url: str,
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> ControlInstance:
        from mediaplane.control.app import create_app

        port = port or free_tcp_port()
        app = create_app(settings, sfu_url=sfu_url, redis_url=redis_url)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_keep_alive=SERVER_KEEP_ALIVE_S,
            ws_ping_interval=settings.ws_ping_interval_s,
            ws_ping_timeout=settings.ws_ping_timeout_s,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        return cls(server, task, port, host)

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, settings: Settings, *, sfu_url: str, redis_url: str
    ) -> AsyncIterator[ControlInstance]:
        inst = await cls.start(settings, sfu_url=sfu_url, redis_url=redis_url)
        try:
            yield inst
        finally:
            await inst.stop()

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 15)


def token(settings: Settings, identity: str, **grants: object) -> str:
    return mint_token(
        api_key=settings.api_key,
        api_secret=settings.secret("api_secret"),
        identity=identity,
        grants=Grants(**grants),  # type: ignore[arg-type]
    )


def participant(settings: Settings, identity: str, room: str, **extra: object) -> str:
    return token(settings, identity, room=room, room_join=True, **extra)


def admin(settings: Settings) -> str:
    return token(settings, "admin", room_create=True, room_list=True)


async def ws_close(url: str) -> tuple[int | None, str]:
    """Open a signaling socket and wait for the server to close it: (code, reason)."""
    ws = await connect(url)
    try:
        await ws.recv()
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
    raise AssertionError(f"the server sent a message instead of closing {url}")
