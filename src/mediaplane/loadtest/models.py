"""What a load test is asked to do, and what it reports."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LoadSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transport: Literal["rtp", "webrtc"] = "rtp"
    rooms: int = Field(default=1, ge=1, le=10000)
    publishers: int = Field(default=1, ge=0, le=1000, description="audio publishers per room")
    subscribers: int = Field(
        default=10, ge=0, le=20000, description="receive-only participants per room"
    )
    publishers_subscribe: bool = Field(
        default=False, description="each publisher also receives the room's other publishers"
    )
    duration_s: float = Field(default=10.0, gt=0, le=3600)
    late_after_ms: float = Field(
        default=200.0, gt=0, description="a packet this late against its stream's clock is lost"
    )
    join_concurrency: int = Field(default=20, ge=1, le=1000)
    room_prefix: str = Field(default="loadtest", pattern=r"^[A-Za-z0-9_.-]{1,40}$")


class Percentiles(BaseModel):
    n: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: list[float]) -> Percentiles:
        if not samples:
            return cls(n=0, p50=0.0, p95=0.0, p99=0.0, max=0.0)
        s = sorted(samples)

        def at(p: float) -> float:
            return s[min(len(s) - 1, int(p / 100 * len(s)))]

        return cls(n=len(s), p50=at(50), p95=at(95), p99=at(99), max=s[-1])


class CpuUse(BaseModel):
    sfu_workers_cpu_s: float | None = Field(description="None when the workers are not local")
    sfu_workers_pct: float | None = Field(description="of one core, summed over workers")
    loadtest_cpu_s: float
    machine_busy_pct: float = Field(description="all cores, 100 = every core busy")


class LoadReport(BaseModel):
    spec: LoadSpec
    joined: int
    join_failures: int
    join_errors: list[str] = Field(default_factory=list)
    join_ms: Percentiles = Field(description="join (+ subscribe) to first packet of every stream")
    publish_ms: Percentiles
    streams: int = Field(description="forwarded streams measured (one per consumer)")
    packets_expected: int
    packets_received: int
    packets_late: int
    loss_pct: float = Field(description="missing + late, of expected")
    jitter_ms: Percentiles = Field(description="RFC 3550 interarrival jitter per stream")
    udp_receive_buffer_errors: int | None = Field(
        default=None, description="kernel drops at a full UDP receive buffer (this host)"
    )
    cpu: CpuUse
    forwarded_pps: float
    cpu_us_per_forwarded_packet: float | None = Field(
        description="SFU worker CPU over the measured window / packets received in it"
    )
    wall_s: float
    packet_bytes_out: int | None = Field(
        default=None, description="size of a forwarded packet (UDP payload), when measured"
    )

    def passed(self, max_loss_pct: float = 1.0) -> bool:
        return self.join_failures == 0 and self.loss_pct < max_loss_pct
