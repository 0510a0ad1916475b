"""Prometheus plumbing shared by the Python services.

Each service (and each instance of it in one process, as the tests run two
control planes side by side) owns a `CollectorRegistry` of its own: nothing
goes to prometheus_client's global registry. `/metrics` first awaits the
service's `refresh()` (async reads: Redis, the SFU, /proc), then renders the
registry. With MEDIAPLANE_METRICS_TOKEN set it needs that bearer token.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as render
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediaplane.http_errors import error_reply
from mediaplane.settings import is_loopback

Refresh = Callable[[], Awaitable[None]]
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def metrics_router(
    registry: Callable[[Request], CollectorRegistry],
    refresh: Callable[[Request], Refresh | None],
    token: str | None,
    *,
    loopback_only: bool = False,
) -> APIRouter:
    """GET /metrics in the Prometheus text format. `loopback_only` (no token, service on a
    network): only clients on this machine may read it (403 for others)."""
    router = APIRouter(tags=["observability"])

    @router.get("/metrics", include_in_schema=True, response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this service (docs/operations.md)."""
        if token is not None:
            given = request.headers.get("authorization", "")
            given = given[7:] if given.startswith("Bearer ") else ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return error_reply(401, "unauthorized", "missing or wrong metrics token")
        elif loopback_only and not is_loopback(request.client.host if request.client else ""):
            return error_reply(403, "forbidden", "metrics are for this machine only: set a token")
        fn = refresh(request)
        if fn is not None:
            await fn()
        return Response(render(registry(request)), media_type=CONTENT_TYPE_LATEST)

    return router


class HttpMetrics:
    """ASGI middleware: requests and their latency by method, route template and status.

    The label is the matched route's template (`/api/rooms/{room}`), never the raw
    path, so room names do not become label values; unmatched paths count as
    `<unmatched>`. WebSocket connections are counted by route as well.
    """

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, prefix: str) -> None:
        self.app = app
        self.requests = Counter(
            f"{prefix}_http_requests_total",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{prefix}_http_request_duration_seconds",
            "Time to the response's first byte, by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.websockets = Counter(
            f"{prefix}_websocket_connections_total",
            "WebSocket connections accepted or refused, by route template",
            ["route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            try:
                await self.app(scope, receive, send)
            finally:
                self.websockets.labels(_route(scope)).inc()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                route, method = _route(scope), _method(scope)
                self.latency.labels(method, route).observe(time.perf_counter() - t0)
                self.requests.labels(method, route, str(status[0])).inc()
            await send(message)

        await self.app(scope, receive, send_wrapper)


# Any other method (PROPFIND, made-up ones) is one label: a client cannot add series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method(scope: Scope) -> str:
    method = str(scope["method"])
    return method if method in KNOWN_METHODS else "<other>"


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"
