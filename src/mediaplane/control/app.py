"""The control plane's FastAPI app: wiring only."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mediaplane.control.api import (
    egress,
    errors,
    health,
    injections,
    pages,
    recordings,
    rooms,
    system,
    tokens,
    whip,
)
from mediaplane.control.jobs.egress import EgressService
from mediaplane.control.jobs.injections import InjectionService
from mediaplane.control.jobs.recordings import RecordingService
from mediaplane.control.jobs.transcodes import TranscodeService
from mediaplane.control.media_client import MediaClient
from mediaplane.control.media_pool import MediaPool
from mediaplane.control.metrics import ControlMetrics
from mediaplane.control.rooms import RoomManager
from mediaplane.control.security_headers import SecurityHeaders
from mediaplane.control.sfu_pool import SfuPool
from mediaplane.control.signaling import endpoint
from mediaplane.control.signaling.transport_watch import TransportWatch
from mediaplane.control.webhooks import Webhooks
from mediaplane.control.whip.service import WhipService
from mediaplane.observability.metrics import HttpMetrics, metrics_router
from mediaplane.settings import Settings, is_loopback
from mediaplane.sfu import SfuClient
from mediaplane.state.store import StateStore

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, sfu_url: str | None, redis_url: str) -> FastAPI:
    """`sfu_url`: the one SFU (static); None with sfu_discovery=redis (nodes from Redis)."""
    metrics = ControlMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await StateStore.create(redis_url)
        if settings.sfu_discovery == "redis":
            sfu = await SfuPool.discover(store, settings.secret("sfu_secret"))
        elif sfu_url is None:
            raise ValueError("sfu_url is required unless MEDIAPLANE_SFU_DISCOVERY=redis")
        else:
            sfu = SfuPool.static(await SfuClient.create(sfu_url, settings.secret("sfu_secret")))
        hooks = Webhooks(
            settings.webhook_urls,
            settings.secret("webhook_secret"),
            store,
            max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s,
        )
        manager = RoomManager(
            store, sfu, span_after_peers=settings.room_span_after_peers,
            resume_grace_s=settings.resume_grace_s,
            resume_tombstone_s=settings.resume_tombstone_s,
        )  # fmt: skip
        manager.on_event = hooks.emit
        await manager.start()
        media: MediaClient
        if settings.media_discovery == "redis":
            media = await MediaPool.discover(store, settings.secret("media_secret"))
        else:
            media = MediaClient(settings.media_url, settings.secret("media_secret"))
        recs = RecordingService(manager, media, hooks, settings.recordings_dir)
        await recs.start_service()
        metrics.attach(manager, hooks, recs)
        if isinstance(media, MediaPool):
            media.on_jobs_failed.append(recs.on_media_jobs_failed)
        egresses = EgressService(manager, media, hooks, settings.recordings_dir)
        await egresses.start_service()
        injects = InjectionService(manager, media, hooks, settings.recordings_dir)
        await injects.start_service()
        whip_service = WhipService(manager, connect_timeout_s=settings.whip_connect_timeout_s)
        await whip_service.start()
        transport_watch = TransportWatch(manager, lost_after_s=settings.transport_lost_after_s)
        await transport_watch.start()
        app.state.transport_watch = transport_watch
        app.state.settings, app.state.rooms, app.state.recordings = settings, manager, recs
        transcodes = TranscodeService(recs, media, hooks)
        app.state.egress, app.state.whip = egresses, whip_service
        app.state.transcodes = transcodes
        app.state.injections = injects
        log.info("control plane up instance=%s", manager.instance_id)
        try:
            yield
        finally:
            await injects.close()
            await whip_service.close()
            await transport_watch.close()
            await egresses.close()
            await transcodes.close()
            await recs.close()
            await manager.close()
            await hooks.close()
            await media.close()
            await sfu.close()
            if sfu.is_static:
                await sfu.default.close()
            await store.close()

    docs = settings.api_docs_enabled  # on a network only when asked for (docs/security.md)
    app = FastAPI(
        title="mediaplane control plane",
        version="0.1.0",
        description="Rooms, participants, tokens and WebSocket signaling.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    errors.install(app)
    app.include_router(health.router)
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    exposed = not is_loopback(settings.host)
    registry, refresh = (lambda _: metrics.registry), (lambda _: metrics.refresh)
    app.include_router(metrics_router(registry, refresh, token, loopback_only=exposed))
    app.add_middleware(HttpMetrics, registry=metrics.registry, prefix="mediaplane_control")
    app.include_router(tokens.router)
    app.include_router(rooms.router)
    app.include_router(recordings.router)
    app.include_router(egress.router)
    app.include_router(injections.router)
    app.include_router(system.router)
    app.include_router(endpoint.router)
    app.include_router(whip.router)
    app.add_middleware(whip.WhipCors)
    app.add_middleware(SecurityHeaders)
    app.include_router(pages.router)
    if pages.STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app
