"""A client of the control plane's signaling WebSocket (docs/signaling.md).

It implements PeerSignaling, so a MediasoupPeer can join rooms like a browser
does; tests, bots and the load tester use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from ssl import SSLContext
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)
Json = dict[str, Any]


class SignalingReplyError(Exception):
    def __init__(self, method: str, code: str, message: str) -> None:
        super().__init__(f"{method}: {code}: {message}")
        self.method, self.code, self.message = method, code, message


class SignalingClient:
    def __init__(self, ws: ClientConnection, timeout: float) -> None:
        self.ws = ws
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Json]]] = {}
        self.events: list[tuple[str, Json]] = []
        self._event_cond = asyncio.Condition()
        self._reader = asyncio.create_task(self._read(), name="signaling-reader")
        self.close_code: int | None = None
        self.close_reason = ""
        # The session's resume token (docs/signaling.md#resuming-a-session): from the
        # join reply, replaced by every resume.
        self.resume_token: str | None = None

    @classmethod
    async def connect(
        cls, url: str, token: str, *, timeout: float = 10.0, ssl: SSLContext | None = None
    ) -> SignalingClient:
        """`ssl`: what a wss:// URL's server is trusted by (default: the system's CAs)."""
        sep = "&" if "?" in url else "?"
        ws = await connect(
            f"{url}{sep}access_token={token}", max_size=8 * 2**20, open_timeout=5, ssl=ssl
        )
        return cls(ws, timeout)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                msg = json.loads(frame)
                if "event" in msg:
                    async with self._event_cond:
                        self.events.append((msg["event"], msg.get("data") or {}))
                        self._event_cond.notify_all()
                    continue
                entry = self._pending.pop(msg.get("id"), None)
                if entry is None:
                    log.warning("reply to unknown request %r", msg.get("id"))
                    continue
                method, fut = entry
                if fut.done():
                    continue
                if msg.get("ok"):
                    fut.set_result(msg.get("data") or {})
                else:
                    err = msg.get("error") or {}
                    fut.set_exception(
                        SignalingReplyError(method, str(err.get("code")), str(err.get("message")))
                    )
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            for method, fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"{method}: signaling socket closed"))
            async with self._event_cond:
                self._event_cond.notify_all()

    async def request(self, method: str, data: Json | None = None) -> Json:
        req_id = next(self._ids)
        fut: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = (method, fut)
        await self.ws.send(json.dumps({"id": req_id, "method": method, "data": data or {}}))
        reply = await asyncio.wait_for(fut, self.timeout)
        if method in ("join", "resume") and isinstance(reply.get("resumeToken"), str):
            self.resume_token = reply["resumeToken"]
        return reply

    @classmethod
    async def resume(
        cls,
        url: str,
        token: str,
        resume_token: str,
        *,
        restart_ice: bool = False,
        timeout: float = 10.0,
    ) -> tuple[SignalingClient, Json]:
        """A new socket that takes over a dropped session: (the client, the resume reply:
        the room's snapshot and, with `restart_ice`, each transport's new ICE parameters).
        aiortc cannot restart ICE, so a MediasoupPeer resumes without (its ICE path is the
        same); a refusal raises SignalingReplyError with the code (`session_expired`...)."""
        client = await cls.connect(url, token, timeout=timeout)
        try:
            reply = await client.request(
                "resume", {"resumeToken": resume_token, "restartIce": restart_ice}
            )
        except BaseException:
            await client.close()
            raise
        return client, reply

    def drop(self) -> None:
        """Lose the socket without a closing handshake (as a network loss would): the
        server keeps the session for its resume grace period."""
        self.ws.transport.abort()

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def wait_event(
        self, name: str, where: Callable[[Json], bool] = lambda _: True, timeout: float = 10.0
    ) -> Json:
        """The first event `name` (already received or coming) for which `where` holds."""
        async with asyncio.timeout(timeout), self._event_cond:
            while True:
                for i, (event, data) in enumerate(self.events):
                    if event == name and where(data):
                        del self.events[i]
                        return data
                if self._reader.done():
                    raise ConnectionError(f"socket closed while waiting for {name}")
                await self._event_cond.wait()

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    # PeerSignaling ---------------------------------------------------------
    async def create_webrtc_transport(self, direction: str) -> Json:
        return await self.request("createTransport", {"direction": direction})

    async def connect_transport(self, transport_id: str, dtls_parameters: Json) -> None:
        await self.request(
            "connectTransport", {"transportId": transport_id, "dtlsParameters": dtls_parameters}
        )

    async def produce(self, transport_id: str, kind: str, rtp_parameters: Json, source: str) -> str:
        data = {"transportId": transport_id, "kind": kind, "rtpParameters": rtp_parameters}
        reply = await self.request("produce", data | {"source": source})
        return str(reply["producerId"])

    async def consume(self, transport_id: str, producer_id: str, rtp_capabilities: Json) -> Json:
        data = {"transportId": transport_id, "producerId": producer_id}
        return await self.request("consume", data | {"rtpCapabilities": rtp_capabilities})

    async def resume_consumer(self, consumer_id: str) -> None:
        await self.request("resumeConsumer", {"consumerId": consumer_id})
