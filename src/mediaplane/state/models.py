"""Records kept in Redis (see keys.py). Stored as JSON / hash fields."""

from __future__ import annotations

import re
import time
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mediaplane.wire.ids import NAME_PATTERN

_ID = re.compile(NAME_PATTERN)


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError("must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return value


SafeId = Annotated[str, AfterValidator(_check_id)]
TrackSource = Literal["audio", "video", "screen"]
PeerKind = Literal["participant", "ingress"]  # ingress: media the server plays in (injection)


def now() -> float:
    return time.time()


class RoomRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: SafeId
    max_participants: int = Field(default=50, ge=1, le=1000)
    empty_timeout_s: int = Field(default=300, ge=0, le=86400)
    metadata: str = Field(default="", max_length=4096)
    # Created by a join (not POST /api/rooms): deleted, record and all, once empty for
    # its empty_timeout_s.
    auto: bool = False
    created_at: float = Field(default_factory=now)
    router_id: str | None = None
    worker_pid: int | None = None
    empty_since: float | None = None
    node_id: str | None = None  # the SFU node hosting the router (multi-node placement)
    # A room too large for one worker: more routers (router id -> worker pid) on other
    # workers of the same node, joined to the first by pipeToRouter.
    extra_routers: dict[str, int] = Field(default_factory=dict)


class PeerRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    peer_id: str
    identity: SafeId
    name: str = ""
    instance: str
    kind: PeerKind = "participant"
    router_id: str | None = None  # None: the room's first router
    joined_at: float = Field(default_factory=now)
    state: Literal["joined", "disconnected"] = "joined"
    disconnected_at: float | None = None


class ResumeRecord(BaseModel):
    """What a resume token is bound to, and whether it can still be used.

    `live`: usable (once). The others are tombstones kept a while so a refusal can say
    why: `used` (a resume took it), `expired` (the grace period ran out: the peer left),
    `ended` (the peer left otherwise: `reason`, e.g. removed by an admin)."""

    model_config = ConfigDict(extra="ignore")

    room: str
    identity: str
    peer_id: str
    state: Literal["live", "used", "expired", "ended"] = "live"
    reason: str = ""


class ProducerRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    producer_id: str
    peer_id: str
    identity: str
    kind: Literal["audio", "video"]
    source: TrackSource
    paused: bool = False
    router_id: str | None = None  # None: the room's first router
    created_at: float = Field(default_factory=now)
    # Simulcast: the height of each spatial layer, lowest first ([] for one layer).
    layer_heights: list[int] = Field(default_factory=list)


class SfuNodeRecord(BaseModel):
    """An SFU node's heartbeat: where to reach it and how loaded it is."""

    model_config = ConfigDict(extra="ignore")

    node_id: SafeId
    url: str = Field(description="ws:// URL of the node's RPC")
    pid: int = 0
    workers: int = 0
    routers: int = 0
    transports: int = 0
    producers: int = 0
    consumers: int = 0
    started_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)


class MediaManagerRecord(BaseModel):
    """A media manager's heartbeat: where to reach it, its CPU budget and what is in use."""

    model_config = ConfigDict(extra="ignore")

    manager_id: SafeId
    url: str
    capacity: float = Field(description="cost units (MEDIAPLANE_MEDIA_CPU_BUDGET)")
    used: float = 0.0
    running: list[str] = Field(default_factory=list, description="ids of jobs not yet ended")
    started_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)

    @property
    def free(self) -> float:
        return self.capacity - self.used


class MediaJobPlacement(BaseModel):
    """Which media manager a job runs on; `failed` once that manager vanished."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    manager_id: str
    kind: str = ""
    state: Literal["placed", "failed"] = "placed"
    error: str | None = None
    placed_at: float = Field(default_factory=now)
    failed_at: float | None = None
