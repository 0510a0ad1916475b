"""Typed shapes of the SFU RPC (docs/sfu-rpc.md).

The wire is camelCase; Python uses snake_case through aliases. mediasoup's
large structures (RTP parameters and capabilities, ICE/DTLS parameters) pass
through as dicts: the SFU validates them, and they are handed on unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

Json = dict[str, Any]


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class RouterInfo(Wire):
    router_id: str
    room_id: str
    worker_pid: int
    rtp_capabilities: Json


class WebRtcTransportInfo(Wire):
    transport_id: str
    ice_parameters: Json
    ice_candidates: list[Json]
    dtls_parameters: Json
    sctp_parameters: Json | None = None


class Tuple(Wire):
    local_address: str
    local_port: int
    protocol: str


class PlainTransportInfo(Wire):
    transport_id: str
    tuple: Tuple
    rtcp_tuple: Tuple | None = None
    srtp_parameters: Json | None = None


class ProducerInfo(Wire):
    producer_id: str
    kind: Literal["audio", "video"]
    type: str


class ConsumerInfo(Wire):
    consumer_id: str
    producer_id: str
    kind: Literal["audio", "video"]
    type: str
    rtp_parameters: Json
    producer_paused: bool


class RtcPorts(Wire):
    """The ports of a worker's WebRtcServer: every WebRTC transport of it uses them."""

    udp: list[int]
    tcp: list[int]


class WorkerInfo(Wire):
    pid: int
    routers: int
    transports: int
    producers: int
    consumers: int
    load: int
    rtc_ports: RtcPorts | None = None


class ServerInfo(Wire):
    version: str
    workers: list[WorkerInfo]


class ServerStats(Wire):
    routers: int
    transports: int
    producers: int
    consumers: int
    observers: int


class Notification(Wire):
    """One SFU notification; `data` keeps the event's fields (camelCase)."""

    notification: str
    data: Json

    def get(self, key: str) -> Any:
        return self.data.get(key)


class WorkerDied(Wire):
    pid: int
    new_pid: int | None
    error: str
    room_ids: list[str]
    router_ids: list[str]
