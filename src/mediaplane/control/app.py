"""The control plane's FastAPI app: wiring only."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

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
from mediaplane.control.limits import Limits
from mediaplane.control.media_client import MediaClient
from mediaplane.control.media_pool import MediaPool
from mediaplane.control.metrics import ControlMetrics
from mediaplane.control.rate_limit import RateLimit
from mediaplane.control.rooms import RoomManager
from mediaplane.control.rooms.layers import Bitrates
from mediaplane.control.security_headers import SecurityHeaders
from mediaplane.control.sfu_pool import SfuPool
from mediaplane.control.signaling import endpoint
from mediaplane.control.signaling.transport_watch import TransportWatch
from mediaplane.control.webhooks import Webhooks
from mediaplane.control.whip.service import WhipService
from mediaplane.control.whip.slots import WhipSlots
from mediaplane.observability.metrics import HttpMetrics, metrics_router
from mediaplane.settings import Settings, is_loopback
from mediaplane.sfu import SfuClient
from mediaplane.state.store import StateStore

log = logging.getLogger(__name__)


async def _sfu(settings: Settings, store: StateStore, sfu_url: str | None) -> SfuPool:
    """The SFU nodes: the one at `sfu_url` (static), or those registered in Redis."""
    if settings.sfu_discovery == "redis":
        return await SfuPool.discover(store, settings.secret("sfu_secret"))
    if sfu_url is None:
        raise ValueError("sfu_url is required unless MEDIAPLANE_SFU_DISCOVERY=redis")
    return SfuPool.static(await SfuClient.create(sfu_url, settings.secret("sfu_secret")))


async def _media(settings: Settings, store: StateStore) -> MediaClient:
    if settings.media_discovery == "redis":
        return await MediaPool.discover(store, settings.secret("media_secret"))
    return MediaClient(settings.media_url, settings.secret("media_secret"))


@asynccontextmanager
async def _services(
    app: FastAPI, settings: Settings, sfu_url: str | None, redis_url: str, metrics: ControlMetrics
) -> AsyncIterator[None]:
    """Every service of the control plane, started in order and closed in the reverse
    order (also those started before one that failed to start)."""
    async with AsyncExitStack() as stack:
        store = await StateStore.create(redis_url)
        stack.push_async_callback(store.close)
        sfu = await _sfu(settings, store, sfu_url)
        if sfu.is_static:
            stack.push_async_callback(sfu.default.close)
        stack.push_async_callback(sfu.close)
        media = await _media(settings, store)
        stack.push_async_callback(media.close)
        hooks = Webhooks(
            settings.webhook_urls, settings.secret("webhook_secret"), store,
            max_attempts=settings.webhook_max_attempts, backoff_s=settings.webhook_backoff_s,
        )  # fmt: skip
        stack.push_async_callback(hooks.close)
        bitrates = Bitrates(settings.rtc_max_incoming_bitrate, settings.rtc_max_outgoing_bitrate)
        manager = RoomManager(
            store, sfu, span_after_peers=settings.room_span_after_peers,
            limits=Limits.from_settings(settings), bitrates=bitrates, last_n=settings.last_n,
            video_codec=settings.video_codec,
            joined_room_empty_timeout_s=settings.joined_room_empty_timeout_s,
            resume_grace_s=settings.resume_grace_s,
            resume_tombstone_s=settings.resume_tombstone_s,
        )  # fmt: skip
        manager.on_event = hooks.emit
        await manager.start()
        stack.push_async_callback(manager.close)
        recs = RecordingService(manager, media, hooks, settings.recordings_dir)
        await recs.start_service()
        stack.push_async_callback(recs.close)
        metrics.attach(manager, hooks, recs)
        if isinstance(media, MediaPool):
            media.on_jobs_failed.append(recs.on_media_jobs_failed)
        transcodes = TranscodeService(recs, media, hooks)
        stack.push_async_callback(transcodes.close)
        egresses = EgressService(
            manager, media, hooks, settings.recordings_dir, settings.outbound_policy()
        )
        await egresses.start_service()
        stack.push_async_callback(egresses.close)
        transport_watch = TransportWatch(manager, lost_after_s=settings.transport_lost_after_s)
        await transport_watch.start()
        stack.push_async_callback(transport_watch.close)
        whip_service = WhipService(
            manager, connect_timeout_s=settings.whip_connect_timeout_s,
            slots=WhipSlots.from_settings(settings),
        )  # fmt: skip
        await whip_service.start()
        stack.push_async_callback(whip_service.close)
        injects = InjectionService(
            manager, media, hooks, settings.recordings_dir, settings.outbound_policy()
        )
        await injects.start_service()
        stack.push_async_callback(injects.close)
        app.state.settings, app.state.rooms, app.state.recordings = settings, manager, recs
        app.state.egress, app.state.whip, app.state.transcodes = egresses, whip_service, transcodes
        app.state.injections, app.state.transport_watch = injects, transport_watch
        log.info("control plane up instance=%s", manager.instance_id)
        yield


def create_app(settings: Settings, *, sfu_url: str | None, redis_url: str) -> FastAPI:
    """`sfu_url`: the one SFU (static); None with sfu_discovery=redis (nodes from Redis)."""
    metrics = ControlMetrics()

    def lifespan(app: FastAPI) -> AbstractAsyncContextManager[None]:
        return _services(app, settings, sfu_url, redis_url, metrics)

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
    app.state.open_join_limit = RateLimit(settings.open_join_per_minute)
    app.state.ws_slots = endpoint.socket_slots(settings)  # signaling sockets by client address
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
