"""Settings from the environment (prefix MEDIAPLANE_), validated once.

Secrets (docs/security.md):
- `production`: every secret must be set and must not be a known development
  default: a production process refuses to start otherwise.
- `dev` (what `./mediaplane up` runs): a secret that is not set comes from
  `<data_dir>/secrets.json`, generated on first use (mode 0600) and reused.
- `test`: the repository's constants below, for the test suite, and only while every
  address a service binds or announces is loopback.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mediaplane import generated_secrets
from mediaplane.url_guard import OutboundPolicy
from mediaplane.wire.ids import NAME_PATTERN

DEV_SFU_SECRET = "dev-sfu-secret"
DEV_MEDIA_SECRET = "dev-media-secret"
DEV_API_KEY = "devkey"
DEV_API_SECRET = "dev-api-secret-change-me-0123456789"
DEV_WEBHOOK_SECRET = "dev-webhook-secret"
DEV_TURN_SECRET = "dev-turn-secret"
DEV_DEFAULTS = {
    DEV_SFU_SECRET,
    DEV_MEDIA_SECRET,
    DEV_API_SECRET,
    DEV_WEBHOOK_SECRET,
    DEV_TURN_SECRET,
}

REPO_ROOT = Path(__file__).resolve().parents[2]


# Our HTTP servers keep an idle connection this long: longer than our clients keep
# one (httpx: 5 s), so a client never reuses a connection the server is closing at that
# moment ("Server disconnected without sending a response").
SERVER_KEEP_ALIVE_S = 75


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; any other name or address is not."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIAPLANE_", extra="ignore")

    env: Literal["dev", "test", "production"] = "dev"
    # observability (docs/operations.md)
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object a line with room/peer/job ids as fields"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_token: SecretStr | None = Field(
        default=None,
        description="when set, GET /metrics on every service needs `Authorization: Bearer` it; "
        "unset, a control plane on a non-loopback address answers /metrics to loopback only",
    )
    api_docs: bool | None = Field(
        default=None,
        description="serve /docs, /redoc and /openapi.json (default: only when the control "
        "plane listens on loopback)",
    )
    data_dir: Path = Field(default=REPO_ROOT / "var", description="recordings, state, logs")
    cache_dir: Path = Path("/var/cache/mediaplane")

    # SFU (sfu/src/config.js reads the same names)
    sfu_host: str = "127.0.0.1"
    sfu_port: int = Field(default=4443, ge=0, le=65535)
    sfu_secret: SecretStr | None = None
    sfu_num_workers: int | None = Field(default=None, ge=1, le=256)
    rtc_min_port: int = Field(default=40000, ge=1024, le=65535)
    rtc_max_port: int = Field(default=49999, ge=1024, le=65535)
    rtc_listen_ip: str = "127.0.0.1"
    rtc_announced_address: str | None = None
    plain_listen_ip: str = "127.0.0.1"
    # Video quality (docs/video-quality.md): bits per second, 0 for no cap.
    rtc_max_incoming_bitrate: int = Field(
        default=3_000_000, ge=0, le=100_000_000, description="per publisher transport"
    )
    rtc_max_outgoing_bitrate: int = Field(
        default=0, ge=0, le=100_000_000, description="per subscriber transport"
    )
    # Last-N (docs/video-quality.md): only the N most recent speakers' cameras at the
    # layer their tile wants, the others at the lowest; 0 for everyone at their tile's.
    last_n: int = Field(
        default=6, ge=0, le=1000, description="cameras forwarded above the lowest layer"
    )
    # The call page's camera codec (docs/video-quality.md), used when the browser has it
    # (else VP8): vp8 and h264 as three simulcast layers, vp9 as one SVC encoding L3T3_KEY.
    video_codec: Literal["vp8", "vp9", "h264"] = Field(
        default="vp8", description="the call page's camera codec"
    )
    sfu_max_message_bytes: int = Field(default=262144, ge=1024)
    # several SFU nodes (docs/multinode.md): each node heartbeats into Redis; with
    # sfu_discovery=redis the control plane places rooms on the live nodes found there.
    sfu_discovery: Literal["static", "redis"] = "static"
    sfu_node_id: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="default: host name + port"
    )
    sfu_node_ttl_s: float = Field(default=2.0, gt=0, le=60, description="heartbeat lifetime")
    sfu_heartbeat_s: float = Field(default=0.5, gt=0, le=30)
    room_span_after_peers: int | None = Field(
        default=None,
        ge=1,
        description="participants per router before a room spans another SFU worker "
        "(pipeToRouter); unset: a room stays on one router",
    )

    # TURN relay and ICE-TCP (docs/networking.md#turn-and-ice-tcp): `mediaplane up` runs
    # coturn on the announced address (the SFU's); every join gets time-limited
    # credentials for it. Its TLS listener presents the control plane's certificate.
    turn: bool | None = Field(
        default=None,
        description="run coturn and hand out TURN servers (default: when the announced "
        "address, else the RTC listen address, is not loopback)",
    )
    turn_port: int = Field(default=3478, ge=1, le=65535, description="TURN over UDP and TCP")
    turn_tls_port: int | None = Field(
        default=None, ge=1, le=65535, description="TURN over TLS (default: 443 as root, else 5349)"
    )
    turn_secret: SecretStr | None = None
    turn_credential_ttl_s: int = Field(
        default=21600, ge=60, le=7 * 86400, description="lifetime of a join's TURN credentials"
    )
    turn_realm: str = Field(default="mediaplane", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    turn_min_port: int = Field(default=50000, ge=1024, le=65535, description="relay ports")
    turn_max_port: int = Field(default=59999, ge=1024, le=65535)
    turn_user_quota: int = Field(
        default=12, ge=1, le=1000, description="allocations at once per credential (a join)"
    )
    turn_total_quota: int = Field(default=2000, ge=1, le=1_000_000)
    rtc_server_port: int | None = Field(
        default=None,
        ge=1024,
        le=65535,
        description="SFU worker i takes all its WebRTC traffic on UDP and TCP port "
        "rtc_server_port + i (default: one port per worker from the RTC range)",
    )

    # control plane
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    api_key: str = DEV_API_KEY
    api_secret: SecretStr | None = None
    redis_url: str | None = None
    open_join: bool = Field(
        default=False,
        description="POST /api/dev/token mints a participant token for any room and name "
        "(the call page's join form); only when set, and only on loopback (docs/security.md)",
    )
    # hardening limits (docs/security.md#limits)
    open_join_per_minute: int = Field(
        default=10, ge=1, le=10000,
        description="open-join tokens one client address may get a minute (then 429)",
    )  # fmt: skip
    joined_room_empty_timeout_s: int = Field(
        default=60, ge=0, le=86400,
        description="a room a join created (not POST /api/rooms) is deleted, record and "
        "all, once it has been empty this long",
    )  # fmt: skip
    outbound_allow: list[str] = Field(
        default_factory=list,
        description="a JSON list of CIDRs or addresses (10.0.0.0/8, ::1/128) and host names, "
        "each optionally with :port, that injection sources and RTMP targets may reach "
        "although loopback, private, link-local or this machine's (docs/security.md#ssrf)",
    )
    hls_url_ttl_s: int = Field(
        default=3600, ge=10, le=7 * 24 * 3600,
        description="lifetime of a signed HLS playlist URL (its segments inherit it)",
    )  # fmt: skip

    # reaching the system from other machines (docs/networking.md)
    announced_address: str | None = Field(
        default=None,
        description="the IP address or DNS name other machines reach this system at: the "
        "pages' URL, the TLS certificate's name and the SFU's announced address (unless "
        "rtc_announced_address); default: host when it is one address, else 127.0.0.1",
    )
    tls: Literal["off", "auto", "on"] = Field(
        default="auto",
        description="https/wss on the control plane; auto: on when the control plane listens "
        "on or announces an address that is not loopback (browsers allow camera and "
        "microphone only on https or loopback)",
    )
    tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate (chain) of the control plane; unset: a self-signed one "
        "made for the announced address in <data_dir>/tls, reused while it fits",
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of tls_cert_file")

    # signaling keep-alive and lost media (docs/signaling.md#keep-alive)
    ws_ping_interval_s: float = Field(
        default=5.0, gt=0, description="the control plane pings every WebSocket this often"
    )
    ws_ping_timeout_s: float = Field(
        default=5.0, gt=0, description="a WebSocket whose pong is this late is closed (a leave)"
    )
    transport_lost_after_s: float = Field(
        default=10.0,
        gt=0,
        description="a participant whose WebRTC transport stays ICE-disconnected this long "
        "(or at once on DTLS failed/closed) is ended, its socket closed with 4010",
    )
    resume_grace_s: float = Field(
        default=20.0,
        ge=0,
        le=600,
        description="a signaling socket that drops is not a leave for this long: the "
        "participant may resume its session (docs/signaling.md#resuming-a-session); 0: off",
    )
    resume_tombstone_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="a used or ended resume token is remembered this long, so a resume "
        "with it is refused with why (resume_token_used, session_ended)",
    )
    whip_connect_timeout_s: float = Field(
        default=15.0, gt=0, description="WHIP/WHEP sessions not DTLS-connected by then are closed"
    )
    # resource caps (docs/security.md#limits): what one participant, room or client
    # address may hold at once; a refusal is `limit_exceeded` (WS) / 429 (HTTP), and a
    # socket over an address cap is closed with 4429
    max_transports_per_peer: int = Field(
        default=4, ge=1, le=64, description="WebRTC transports per participant (send + recv: 2)"
    )
    max_producers_per_peer_kind: int = Field(
        default=4, ge=1, le=64, description="audio and video producers each, per participant"
    )
    max_consumers_per_peer: int = Field(default=500, ge=1, le=100_000)
    max_room_participants: int = Field(
        default=1000, ge=1, le=1000, description="caps every room's own max_participants"
    )
    max_room_producers: int = Field(default=500, ge=1, le=100_000)
    ws_max_connections_per_address: int = Field(
        default=50, ge=1, description="open signaling sockets per client address"
    )
    ws_max_connections: int = Field(default=2000, ge=1, description="open signaling sockets")
    whip_max_sessions_per_address: int = Field(default=20, ge=1)
    whip_max_sessions_per_room: int = Field(default=50, ge=1)
    whip_max_sessions: int = Field(default=500, ge=1, description="WHIP + WHEP sessions in all")
    signaling_max_message_bytes: int = Field(
        default=65536, ge=1024, le=1024 * 1024,
        description="a larger signaling frame closes the socket (1009) before it is read",
    )  # fmt: skip

    # webhooks (recording.*, room.*, participant.*): JSON POSTs signed with HMAC-SHA256
    webhook_urls: list[str] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    webhook_max_attempts: int = Field(default=5, ge=1, le=20)
    webhook_backoff_s: float = Field(default=0.5, gt=0)

    # media manager
    media_host: str = "127.0.0.1"
    media_port: int = Field(default=8090, ge=0, le=65535)
    media_secret: SecretStr | None = None
    media_rtp_ip: str = "127.0.0.1"
    recordings_root: Path | None = Field(default=None, description="default: <data_dir>/recordings")
    media_cpu_budget: float = Field(default=100.0, gt=0, description="admission budget, cost units")
    media_stall_timeout_s: float = Field(default=5.0, gt=0)
    media_stop_deadline_s: float = Field(default=10.0, gt=0)
    media_inject_timeout_s: float = Field(
        default=10.0, gt=0, description="inject: a source with no media for this long fails"
    )
    media_max_body_bytes: int = Field(default=65536, ge=1024)
    # several media managers (docs/multinode.md): with media_discovery=redis a manager
    # heartbeats its capacity and load into Redis, and the control plane places jobs there.
    media_discovery: Literal["static", "redis"] = "static"
    media_manager_id: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="default: host name + port"
    )
    media_public_url: str | None = Field(
        default=None, description="URL the control plane uses (default: media_url)"
    )
    media_node_ttl_s: float = Field(default=2.0, gt=0, le=60, description="heartbeat lifetime")
    media_heartbeat_s: float = Field(default=0.5, gt=0, le=30)

    @field_validator("outbound_allow")
    @classmethod
    def _outbound_allow(cls, v: list[str]) -> list[str]:
        OutboundPolicy.of(v)  # a typo fails at start, not at the first injection
        return v

    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy.of(self.outbound_allow)

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        if self.rtc_min_port > self.rtc_max_port:
            raise ValueError("rtc_min_port must not exceed rtc_max_port")
        if self.turn_min_port > self.turn_max_port:
            raise ValueError("turn_min_port must not exceed turn_max_port")
        secrets = (
            ("sfu_secret", DEV_SFU_SECRET),
            ("api_secret", DEV_API_SECRET),
            ("media_secret", DEV_MEDIA_SECRET),
            ("webhook_secret", DEV_WEBHOOK_SECRET),
            ("turn_secret", DEV_TURN_SECRET),
        )
        for name, default in secrets:
            value: SecretStr | None = getattr(self, name)
            if value is None or value.get_secret_value() in DEV_DEFAULTS:
                if self.env == "production":
                    raise ValueError(
                        f"MEDIAPLANE_{name.upper()} must be set to a non-default secret "
                        f"when MEDIAPLANE_ENV={self.env}"
                    )
                if self.env == "dev":
                    default = generated_secrets.load_or_create(self.secrets_file)[name]
                setattr(self, name, SecretStr(default))
        if self.env == "production" and len(self.secret("api_secret")) < 32:
            raise ValueError("MEDIAPLANE_API_SECRET must be at least 32 characters")
        exposed = self.exposed_addresses()
        if self.open_join and exposed:
            raise ValueError(
                "MEDIAPLANE_OPEN_JOIN=true would let anyone on the network mint participant "
                f"tokens: refused on a non-loopback address ({', '.join(exposed)}); "
                "hand out token links (POST /api/tokens) instead"
            )
        known = [n for n, _ in secrets if self.secret(n) in DEV_DEFAULTS]  # type: ignore[arg-type]
        if exposed and known:
            raise ValueError(
                f"the repository's development secrets ({', '.join(known)}) may not be used "
                f"on a non-loopback address ({', '.join(exposed)}): set MEDIAPLANE_ENV=dev "
                "(generated secrets) or set each MEDIAPLANE_*_SECRET"
            )
        return self

    def exposed_addresses(self) -> list[str]:
        """The addresses a service binds or announces that are not loopback."""
        addresses = [self.host, self.sfu_host, self.media_host, self.rtc_listen_ip]
        addresses += [self.plain_listen_ip, self.media_rtp_ip, self.rtc_announced_address or ""]
        addresses.append(self.announced_address or "")
        return sorted({a for a in addresses if a and not is_loopback(a)})

    @property
    def secrets_file(self) -> Path:
        return self.data_dir / "secrets.json"

    def secret(
        self,
        name: Literal["sfu_secret", "api_secret", "media_secret", "webhook_secret", "turn_secret"],
    ) -> str:
        value: SecretStr | None = getattr(self, name)
        assert value is not None  # set by the validator
        return value.get_secret_value()

    @property
    def api_docs_enabled(self) -> bool:
        return self.api_docs if self.api_docs is not None else is_loopback(self.host)

    @property
    def media_url(self) -> str:
        return f"http://{self.media_host}:{self.media_port}"

    @property
    def recordings_dir(self) -> Path:
        return self.recordings_root or self.data_dir / "recordings"

    @property
    def media_state_dir(self) -> Path:
        return self.data_dir / "media-state"

    @property
    def sfu_announced_address(self) -> str | None:
        """What the SFU's ICE candidates (and coturn, turn/credentials.py) announce: the
        announced address, unless rtc_announced_address overrides it for media alone."""
        return self.rtc_announced_address or self.announced_address or None

    def sfu_env(self) -> dict[str, str]:
        """Environment for the Node SFU process."""
        env = {
            "MEDIAPLANE_ENV": self.env,
            "MEDIAPLANE_SFU_HOST": self.sfu_host,
            "MEDIAPLANE_SFU_PORT": str(self.sfu_port),
            "MEDIAPLANE_SFU_SECRET": self.secret("sfu_secret"),
            "MEDIAPLANE_RTC_MIN_PORT": str(self.rtc_min_port),
            "MEDIAPLANE_RTC_MAX_PORT": str(self.rtc_max_port),
            "MEDIAPLANE_RTC_LISTEN_IP": self.rtc_listen_ip,
            "MEDIAPLANE_PLAIN_LISTEN_IP": self.plain_listen_ip,
            "MEDIAPLANE_SFU_MAX_MESSAGE_BYTES": str(self.sfu_max_message_bytes),
        }
        if self.sfu_num_workers is not None:
            env["MEDIAPLANE_SFU_NUM_WORKERS"] = str(self.sfu_num_workers)
        if self.sfu_announced_address:
            env["MEDIAPLANE_RTC_ANNOUNCED_ADDRESS"] = self.sfu_announced_address
        if self.rtc_server_port is not None:
            env["MEDIAPLANE_RTC_SERVER_PORT"] = str(self.rtc_server_port)
        if self.metrics_token is not None:
            env["MEDIAPLANE_METRICS_TOKEN"] = self.metrics_token.get_secret_value()
        return env
