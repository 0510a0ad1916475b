"""Signed webhooks with retries and a delivery log.

Each event is a JSON body `{id, event, created_at, data}` POSTed to every
configured URL with headers:

    Webhook-Id: <event id>            (the same on every retry: deduplicate on it)
    Webhook-Timestamp: <unix seconds>
    Webhook-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>

A receiver verifies by recomputing the HMAC over the timestamp, a dot and the
raw body, comparing in constant time, and refusing timestamps older than a few
minutes (docs/webhooks.md). Failed deliveries (non-2xx or network error) are
retried with exponential backoff; every attempt is logged in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from mediaplane.state.store import StateStore

log = logging.getLogger(__name__)
DELIVERIES_KEY = "mp:webhooks:deliveries"
MAX_LOG = 1000


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, max_age_s: int = 300
) -> bool:
    """The recipe a receiver follows (also used by our tests)."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > max_age_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


class Webhooks:
    def __init__(
        self,
        urls: list[str],
        secret: str,
        store: StateStore,
        *,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
    ) -> None:
        self.urls = urls
        self.secret = secret
        self.store = store
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._http = httpx.AsyncClient(timeout=5.0)
        self._tasks: set[asyncio.Task[None]] = set()
        # Metrics hooks: on_emit(event) for every event (URLs or not);
        # on_attempt(event, outcome, seconds) per delivery attempt, outcome
        # "delivered", "retry" (failed, will retry) or "gave_up" (failed, last try).
        self.on_emit: list[Callable[[str], None]] = []
        self.on_attempt: list[Callable[[str, str, float], None]] = []

    def emit(self, event: str, data: dict[str, Any]) -> str:
        """Queue an event for every URL; returns its id."""
        event_id = uuid.uuid4().hex
        body = json.dumps(
            {"id": event_id, "event": event, "created_at": time.time(), "data": data},
            separators=(",", ":"),
        ).encode()
        for observe in self.on_emit:
            observe(event)
        for url in self.urls:
            task = asyncio.create_task(self._deliver(url, event_id, event, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return event_id

    async def _deliver(self, url: str, event_id: str, event: str, body: bytes) -> None:
        delay = self.backoff_s
        for attempt in range(1, self.max_attempts + 1):
            ts = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "Webhook-Id": event_id,
                "Webhook-Timestamp": str(ts),
                "Webhook-Signature": sign(self.secret, ts, body),
            }
            status: int | None = None
            error = ""
            t0 = time.perf_counter()
            try:
                r = await self._http.post(url, content=body, headers=headers)
                status = r.status_code
            except httpx.HTTPError as e:
                error = str(e) or type(e).__name__
            ok = status is not None and 200 <= status < 300
            outcome = "delivered" if ok else "retry" if attempt < self.max_attempts else "gave_up"
            for observe in self.on_attempt:
                observe(event, outcome, time.perf_counter() - t0)
            await self._log(event_id, event, url, attempt, status, error, ok)
            if ok:
                return
            log.warning(
                "webhook %s %s to %s failed (attempt %d): %s",
                event,
                event_id,
                url,
                attempt,
                status or error,
            )
            if attempt < self.max_attempts:
                await asyncio.sleep(delay)
                delay *= 2

    async def _log(
        self,
        event_id: str,
        event: str,
        url: str,
        attempt: int,
        status: int | None,
        error: str,
        ok: bool,
    ) -> None:
        entry = {"id": event_id, "event": event, "url": url, "attempt": attempt,
                 "status": status, "error": error, "delivered": ok, "at": time.time()}  # fmt: skip
        with contextlib.suppress(Exception):
            r = self.store.redis
            await r.lpush(DELIVERIES_KEY, json.dumps(entry))
            await r.ltrim(DELIVERIES_KEY, 0, MAX_LOG - 1)

    async def deliveries(self, limit: int = 100) -> list[dict[str, Any]]:
        raw = await self.store.redis.lrange(DELIVERIES_KEY, 0, limit - 1)
        return [json.loads(x) for x in raw]

    async def close(self) -> None:
        """Let queued deliveries finish their current attempt, then stop."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()
