"""The media manager's FastAPI app: wiring only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mediaplane.media import api
from mediaplane.media.manager import JobManager
from mediaplane.media.metrics import MediaMetrics
from mediaplane.media.registry import ManagerRegistrar
from mediaplane.observability.metrics import HttpMetrics, metrics_router
from mediaplane.settings import Settings
from mediaplane.state.store import StateStore


def create_app(settings: Settings) -> FastAPI:
    metrics = MediaMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager = JobManager(settings)
        metrics.attach(manager)
        await manager.start()
        app.state.manager = manager
        app.state.secret = settings.secret("media_secret")
        registrar: ManagerRegistrar | None = None
        store: StateStore | None = None
        if settings.media_discovery == "redis":
            if not settings.redis_url:
                raise RuntimeError("MEDIAPLANE_MEDIA_DISCOVERY=redis needs MEDIAPLANE_REDIS_URL")
            store = await StateStore.create(settings.redis_url)
            registrar = ManagerRegistrar(store, manager, settings)
            await registrar.beat()
            registrar.start()
        try:
            yield
        finally:
            # Deregister first: no new job is placed here while the running ones finish.
            if registrar is not None:
                await registrar.stop()
            if store is not None:
                await store.close()
            await manager.close()

    app = FastAPI(
        title="mediaplane media manager",
        version="0.1.0",
        description="Jobs over GStreamer worker processes: record, stream, inject, transcode.",
        lifespan=lifespan,
    )
    api.install(app, settings.media_max_body_bytes)
    app.include_router(api.health)
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    app.include_router(metrics_router(lambda _: metrics.registry, lambda _: None, token))
    app.add_middleware(HttpMetrics, registry=metrics.registry, prefix="mediaplane_media")
    app.include_router(api.router)
    return app
