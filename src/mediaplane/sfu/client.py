"""Typed async client of the SFU RPC (docs/sfu-rpc.md).

One WebSocket per client. A supervisor task owned by the client keeps it
connected: when the socket drops, in-flight requests fail with
SfuConnectionError, and it reconnects with capped exponential backoff (0.1 s
to 2 s); requests made meanwhile wait for the connection up to their timeout.
An authentication refusal (close code 4001) is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from mediaplane.sfu.errors import (
    SfuAuthError,
    SfuConnectionError,
    SfuError,
    SfuRpcError,
    SfuTimeout,
)
from mediaplane.sfu.models import (
    ConsumerInfo,
    Json,
    Notification,
    PlainTransportInfo,
    ProducerInfo,
    RouterInfo,
    ServerInfo,
    ServerStats,
    WebRtcTransportInfo,
)

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4001
Listener = Callable[[Notification], Awaitable[None] | None]
M = TypeVar("M", bound=BaseModel)


class SfuClient:
    def __init__(self, url: str, secret: str, *, request_timeout: float, reconnect: bool) -> None:
        self.url = url
        self._secret = secret
        self.request_timeout = request_timeout
        self._reconnect = reconnect
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._pending: dict[int, tuple[str, asyncio.Future[Json]]] = {}
        self._ids = itertools.count(1)
        self._listeners: list[Listener] = []
        self._fatal: SfuError | None = None
        self._closed = False
        self._supervisor: asyncio.Task[None] | None = None
        self._listener_tasks: set[asyncio.Future[None]] = set()
        self.reconnects = 0
        # Called after every request with (method, seconds, outcome): "ok", the
        # error reply's code, "timeout" or "connection" (control plane metrics).
        self.rpc_observers: list[Callable[[str, float, str], None]] = []

    @classmethod
    async def create(
        cls, url: str, secret: str, *, request_timeout: float = 10.0, reconnect: bool = True
    ) -> SfuClient:
        """Connect and check the secret with a first call (raises SfuAuthError if refused)."""
        client = cls(url, secret, request_timeout=request_timeout, reconnect=reconnect)
        await client._open()
        client._supervisor = asyncio.create_task(client._supervise(), name=f"sfu-client {url}")
        try:
            await client.server_info()
        except BaseException:
            await client.close()
            raise
        return client

    # connection ---------------------------------------------------------
    async def _open(self) -> None:
        try:
            self._ws = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self._secret}"},
                max_size=64 * 1024 * 1024,
                open_timeout=5,
                ping_interval=10,
                ping_timeout=10,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as e:
            raise SfuConnectionError(f"cannot connect to the SFU at {self.url}: {e}") from e
        self._connected.set()

    async def _supervise(self) -> None:
        delay = 0.1
        while not self._closed:
            ws = self._ws
            if ws is not None:
                await self._read(ws)
                self._connected.clear()
                self._ws = None
                self._fail_pending(self._fatal or SfuConnectionError("connection to the SFU lost"))
            if self._fatal is not None or not self._reconnect or self._closed:
                if self._fatal is None:
                    self._fatal = SfuConnectionError("connection to the SFU closed")
                self._fail_pending(self._fatal)
                return
            try:
                await self._open()
                self.reconnects += 1
                delay = 0.1
                log.info("reconnected to the SFU at %s", self.url)
            except SfuConnectionError as e:
                log.warning("SFU reconnect failed (retry in %.1f s): %s", delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                self._dispatch(frame)
        except ConnectionClosed:
            pass
        code = ws.close_code
        if code == CLOSE_UNAUTHORIZED:
            self._fatal = SfuAuthError("the SFU refused our secret (close code 4001)")
        elif code is not None and code != 1000:
            log.warning("SFU socket closed with code %s (%s)", code, ws.close_reason)

    def _dispatch(self, frame: str | bytes) -> None:
        try:
            msg = json.loads(frame)
        except ValueError:
            log.error("SFU sent a frame that is not JSON; ignored")
            return
        if "notification" in msg:
            self._notify(Notification.model_validate(msg))
            return
        entry = self._pending.pop(msg["id"], None) if isinstance(msg.get("id"), int) else None
        if entry is None or entry[1].done():
            log.warning("SFU reply for an unknown request id %r", msg.get("id"))
            return
        method, fut = entry
        if msg.get("ok"):
            fut.set_result(msg.get("data") or {})
        else:
            err = msg.get("error") or {}
            fut.set_exception(SfuRpcError(str(err.get("code")), str(err.get("message")), method))

    def _fail_pending(self, error: SfuError) -> None:
        pending, self._pending = self._pending, {}
        for _, fut in pending.values():
            if not fut.done():
                fut.set_exception(error)

    # notifications ------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call `listener` for every notification (a coroutine runs as a task of this client)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _notify(self, note: Notification) -> None:
        for listener in list(self._listeners):
            try:
                result = listener(note)
            except Exception:
                log.exception("SFU notification listener failed on %s", note.notification)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._listener_tasks.add(task)
                task.add_done_callback(self._listener_done)

    def _listener_done(self, task: asyncio.Future[None]) -> None:
        self._listener_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SFU notification listener failed", exc_info=task.exception())

    # requests -----------------------------------------------------------
    async def request(
        self, method: str, params: Json | None = None, *, timeout: float | None = None
    ) -> Json:
        """One RPC call; returns the reply's data or raises an SfuError."""
        if not self.rpc_observers:
            return await self._request(method, params, timeout)
        t0 = time.perf_counter()
        outcome = "ok"
        try:
            return await self._request(method, params, timeout)
        except SfuRpcError as e:
            outcome = e.code
            raise
        except SfuTimeout:
            outcome = "timeout"
            raise
        except SfuError:
            outcome = "connection"
            raise
        finally:
            elapsed = time.perf_counter() - t0
            for observe in self.rpc_observers:
                observe(method, elapsed, outcome)

    async def _request(self, method: str, params: Json | None, timeout: float | None) -> Json:
        timeout = self.request_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._closed:
                        raise SfuConnectionError("client is closed")
                    if self._fatal is not None:
                        raise self._fatal
                    await self._connected.wait()
                    ws = self._ws
                    if ws is not None:
                        break
                req_id = next(self._ids)
                fut: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
                self._pending[req_id] = (method, fut)
                try:
                    await ws.send(
                        json.dumps({"id": req_id, "method": method, "params": params or {}})
                    )
                    return await fut
                except ConnectionClosed as e:
                    if fut.done() and not fut.cancelled():
                        fut.exception()  # failed by the supervisor meanwhile; consume it
                    lost = SfuConnectionError(f"{method}: connection to the SFU lost")
                    raise (self._fatal or lost) from e
                finally:
                    self._pending.pop(req_id, None)
        except TimeoutError:
            raise SfuTimeout(f"{method}: no reply from the SFU within {timeout} s") from None

    async def _call(self, model: type[M], method: str, params: Json | None = None) -> M:
        return model.model_validate(await self.request(method, params))

    # typed methods ------------------------------------------------------
    async def server_info(self) -> ServerInfo:
        return await self._call(ServerInfo, "server.info")

    async def server_stats(self) -> ServerStats:
        return await self._call(ServerStats, "server.stats")

    async def create_router(
        self, room_id: str, *, avoid_workers: Collection[int] = ()
    ) -> RouterInfo:
        """The room's router (idempotent per room id): a new one goes to the least-loaded
        worker, one whose pid is not in `avoid_workers` when there is such a worker."""
        params: Json = {"roomId": room_id}
        if avoid_workers:
            params["avoidWorkerPids"] = sorted(avoid_workers)
        return await self._call(RouterInfo, "router.create", params)

    async def close_router(self, router_id: str) -> None:
        await self.request("router.close", {"routerId": router_id})

    async def get_router_rtp_capabilities(self, router_id: str) -> Json:
        data = await self.request("router.getRtpCapabilities", {"routerId": router_id})
        caps: Json = data["rtpCapabilities"]
        return caps

    async def create_router_with_codecs(
        self, near_router_id: str, key: str, media_codecs: list[Json]
    ) -> RouterInfo:
        """A router of its own with these mediaCodecs, on the worker of `near_router_id`."""
        params = {"nearRouterId": near_router_id, "key": key, "mediaCodecs": media_codecs}
        return await self._call(RouterInfo, "router.createWithCodecs", params)

    async def pipe_producer(self, producer_id: str, router_id: str) -> ProducerInfo:
        """The producer made available on another router (a new producer id)."""
        params = {"producerId": producer_id, "routerId": router_id}
        return await self._call(ProducerInfo, "router.pipeProducer", params)

    async def can_consume(self, router_id: str, producer_id: str, rtp_capabilities: Json) -> bool:
        params = {"routerId": router_id, "producerId": producer_id}
        data = await self.request(
            "router.canConsume", params | {"rtpCapabilities": rtp_capabilities}
        )
        return bool(data["canConsume"])

    async def create_webrtc_transport(
        self,
        router_id: str,
        *,
        enable_udp: bool = True,
        enable_tcp: bool = True,
        prefer_udp: bool = True,
        app_data: Json | None = None,
    ) -> WebRtcTransportInfo:
        params = {
            "routerId": router_id,
            "enableUdp": enable_udp,
            "enableTcp": enable_tcp,
            "preferUdp": prefer_udp,
            "appData": app_data or {},
        }
        return await self._call(WebRtcTransportInfo, "transport.createWebRtc", params)

    async def connect_transport(self, transport_id: str, dtls_parameters: Json) -> None:
        params = {"transportId": transport_id, "dtlsParameters": dtls_parameters}
        await self.request("transport.connect", params)

    async def restart_ice(self, transport_id: str) -> Json:
        data = await self.request("transport.restartIce", {"transportId": transport_id})
        ice: Json = data["iceParameters"]
        return ice

    async def create_plain_transport(
        self,
        router_id: str,
        *,
        rtcp_mux: bool = True,
        comedia: bool = False,
        enable_srtp: bool = False,
        srtp_crypto_suite: str | None = None,
        app_data: Json | None = None,
    ) -> PlainTransportInfo:
        params: Json = {
            "routerId": router_id,
            "rtcpMux": rtcp_mux,
            "comedia": comedia,
            "enableSrtp": enable_srtp,
            "appData": app_data or {},
        }
        if srtp_crypto_suite is not None:
            params["srtpCryptoSuite"] = srtp_crypto_suite
        return await self._call(PlainTransportInfo, "transport.createPlain", params)

    async def connect_plain_transport(
        self,
        transport_id: str,
        *,
        ip: str | None = None,
        port: int | None = None,
        rtcp_port: int | None = None,
        srtp_parameters: Json | None = None,
    ) -> None:
        params: Json = {"transportId": transport_id}
        for key, value in (
            ("ip", ip),
            ("port", port),
            ("rtcpPort", rtcp_port),
            ("srtpParameters", srtp_parameters),
        ):
            if value is not None:
                params[key] = value
        await self.request("transport.connectPlain", params)

    async def close_transport(self, transport_id: str) -> None:
        await self.request("transport.close", {"transportId": transport_id})

    async def produce(
        self,
        transport_id: str,
        kind: str,
        rtp_parameters: Json,
        *,
        paused: bool = False,
        app_data: Json | None = None,
    ) -> ProducerInfo:
        params = {
            "transportId": transport_id,
            "kind": kind,
            "rtpParameters": rtp_parameters,
            "paused": paused,
            "appData": app_data or {},
        }
        return await self._call(ProducerInfo, "transport.produce", params)

    async def consume(
        self,
        transport_id: str,
        producer_id: str,
        rtp_capabilities: Json,
        *,
        paused: bool = True,
        app_data: Json | None = None,
    ) -> ConsumerInfo:
        params = {
            "transportId": transport_id,
            "producerId": producer_id,
            "rtpCapabilities": rtp_capabilities,
            "paused": paused,
            "appData": app_data or {},
        }
        return await self._call(ConsumerInfo, "transport.consume", params)

    async def _object_call(self, method: str, key: str, obj_id: str) -> None:
        await self.request(method, {key: obj_id})

    async def pause_producer(self, producer_id: str) -> None:
        await self._object_call("producer.pause", "producerId", producer_id)

    async def resume_producer(self, producer_id: str) -> None:
        await self._object_call("producer.resume", "producerId", producer_id)

    async def close_producer(self, producer_id: str) -> None:
        await self._object_call("producer.close", "producerId", producer_id)

    async def pause_consumer(self, consumer_id: str) -> None:
        await self._object_call("consumer.pause", "consumerId", consumer_id)

    async def resume_consumer(self, consumer_id: str) -> None:
        await self._object_call("consumer.resume", "consumerId", consumer_id)

    async def close_consumer(self, consumer_id: str) -> None:
        await self._object_call("consumer.close", "consumerId", consumer_id)

    async def request_key_frame(self, consumer_id: str) -> None:
        await self._object_call("consumer.requestKeyFrame", "consumerId", consumer_id)

    async def set_preferred_layers(
        self, consumer_id: str, spatial_layer: int, temporal_layer: int | None = None
    ) -> None:
        params: Json = {"consumerId": consumer_id, "spatialLayer": spatial_layer}
        if temporal_layer is not None:
            params["temporalLayer"] = temporal_layer
        await self.request("consumer.setPreferredLayers", params)

    async def set_priority(self, consumer_id: str, priority: int) -> None:
        """A consumer's share when the SFU's bandwidth estimate is short (1..255)."""
        params = {"consumerId": consumer_id, "priority": priority}
        await self.request("consumer.setPriority", params)

    async def consumer_priority(self, consumer_id: str) -> int:
        """The priority the SFU gives a consumer now (mediasoup's consumer.priority)."""
        data = await self.request("consumer.getStats", {"consumerId": consumer_id})
        return int(data["priority"])

    async def set_max_incoming_bitrate(self, transport_id: str, bitrate: int) -> None:
        """Bits per second a publisher may send on a transport (0: no cap)."""
        params = {"transportId": transport_id, "bitrate": bitrate}
        await self.request("transport.setMaxIncomingBitrate", params)

    async def set_max_outgoing_bitrate(self, transport_id: str, bitrate: int) -> None:
        """Bits per second the SFU may send a subscriber on a transport (0: no cap)."""
        params = {"transportId": transport_id, "bitrate": bitrate}
        await self.request("transport.setMaxOutgoingBitrate", params)

    async def get_stats(
        self, kind: str, obj_id: str, *, timeout: float | None = None
    ) -> list[Json]:
        """Stats of a transport, producer or consumer (mediasoup's getStats())."""
        if kind not in ("transport", "producer", "consumer"):
            raise ValueError(f"no stats for {kind!r}")
        data = await self.request(f"{kind}.getStats", {f"{kind}Id": obj_id}, timeout=timeout)
        stats: list[Json] = data["stats"]
        return stats

    async def create_audio_level_observer(
        self, router_id: str, *, max_entries: int = 1, threshold: int = -80, interval: int = 1000
    ) -> str:
        params = {
            "routerId": router_id,
            "maxEntries": max_entries,
            "threshold": threshold,
            "interval": interval,
        }
        data = await self.request("observer.createAudioLevel", params)
        return str(data["observerId"])

    async def create_active_speaker_observer(self, router_id: str, *, interval: int = 300) -> str:
        params = {"routerId": router_id, "interval": interval}
        data = await self.request("observer.createActiveSpeaker", params)
        return str(data["observerId"])

    async def observer_add_producer(self, observer_id: str, producer_id: str) -> None:
        params = {"observerId": observer_id, "producerId": producer_id}
        await self.request("observer.addProducer", params)

    async def observer_remove_producer(self, observer_id: str, producer_id: str) -> None:
        params = {"observerId": observer_id, "producerId": producer_id}
        await self.request("observer.removeProducer", params)

    # lifecycle ----------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def closed(self) -> bool:
        """close() was called: this client makes no more requests."""
        return self._closed

    async def wait_connected(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    async def close(self) -> None:
        """Close the socket and stop reconnecting. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._connected.set()  # wake waiters so they see _closed
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        self._fail_pending(SfuConnectionError("client is closed"))
        for task in list(self._listener_tasks):
            task.cancel()
        await asyncio.gather(*self._listener_tasks, return_exceptions=True)
