"""The browser <-> control plane signaling protocol (docs/signaling.md).

Requests `{id, method, data}` get exactly one response `{id, ok, data | error}`;
events `{event, data}` are pushed. Every request's data is validated into the
model of its method before any handler runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mediaplane.turn.credentials import IceServer
from mediaplane.wire.ids import Json

__all__ = ["IceServer"]  # the join reply's `iceServers` entries (mediaplane.turn.credentials)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Request(Strict):
    id: int = Field(ge=0, le=2**53)
    method: str = Field(min_length=1, max_length=64)
    data: Json = Field(default_factory=dict)


class ErrorBody(BaseModel):
    code: str
    message: str


class Response(BaseModel):
    id: int | None
    ok: bool
    data: Json | None = None
    error: ErrorBody | None = None


class Event(BaseModel):
    event: str
    data: Json


# request payloads -----------------------------------------------------------
class JoinData(Strict):
    display_name: str | None = Field(default=None, alias="displayName", max_length=128)
    rtp_capabilities: Json | None = Field(default=None, alias="rtpCapabilities")


class ResumeData(Strict):
    """The first request of a new socket that takes over a dropped session."""

    resume_token: str = Field(alias="resumeToken", min_length=16, max_length=128)
    restart_ice: bool = Field(default=True, alias="restartIce")


class CreateTransportData(Strict):
    direction: Literal["send", "recv"]


class ConnectTransportData(Strict):
    transport_id: str = Field(alias="transportId", max_length=64)
    dtls_parameters: Json = Field(alias="dtlsParameters")


class TransportIdData(Strict):
    transport_id: str = Field(alias="transportId", max_length=64)


class ProduceData(Strict):
    transport_id: str = Field(alias="transportId", max_length=64)
    kind: Literal["audio", "video"]
    rtp_parameters: Json = Field(alias="rtpParameters")
    source: Literal["audio", "video", "screen"] | None = None
    paused: bool = False
    # The capture height (simulcast: the top layer's), for the layer policy.
    video_height: int | None = Field(default=None, alias="videoHeight", ge=1, le=4320)


class ConsumeData(Strict):
    transport_id: str = Field(alias="transportId", max_length=64)
    producer_id: str = Field(alias="producerId", max_length=64)
    rtp_capabilities: Json = Field(alias="rtpCapabilities")


class ProducerIdData(Strict):
    producer_id: str = Field(alias="producerId", max_length=64)


class ConsumerIdData(Strict):
    consumer_id: str = Field(alias="consumerId", max_length=64)


class PreferredLayersData(Strict):
    consumer_id: str = Field(alias="consumerId", max_length=64)
    spatial_layer: int = Field(alias="spatialLayer", ge=0, le=16)
    temporal_layer: int | None = Field(default=None, alias="temporalLayer", ge=0, le=16)


class TrackSettingsData(Strict):
    """A subscriber's tile for a video consumer: shown or not, and its size in device pixels."""

    consumer_id: str = Field(alias="consumerId", max_length=64)
    visible: bool
    width: int = Field(default=0, ge=0, le=7680)
    height: int = Field(default=0, ge=0, le=4320)


class EmptyData(Strict):
    pass


# error codes (the `code` of an error reply) ------------------------------------
BAD_REQUEST = "bad_request"  # not JSON / not a request
UNKNOWN_METHOD = "unknown_method"
INVALID_DATA = "invalid_data"  # data fails its model
FORBIDDEN = "forbidden"  # the token lacks the grant
NOT_FOUND = "not_found"  # unknown transport/producer/consumer for this peer
INVALID_STATE = "invalid_state"  # e.g. produce before join
ROOM_FULL = "room_full"
LIMIT_EXCEEDED = "limit_exceeded"  # a resource cap (control/limits.py); the message names it
RATE_LIMITED = "rate_limited"
SFU_ERROR = "sfu_error"  # the SFU refused (message carries its reason)
UNAVAILABLE = "unavailable"  # SFU or Redis unreachable right now
INTERNAL = "internal"
# a refused `resume` (control/rooms/resume.py)
SESSION_EXPIRED = "session_expired"  # the grace period ran out (or no such token)
RESUME_TOKEN_USED = "resume_token_used"
SESSION_ENDED = "session_ended"  # the peer left meanwhile (removed, replaced, room deleted)
RESUME_MISMATCH = "resume_mismatch"  # another participant's or another room's token
