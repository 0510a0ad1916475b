"""The one uvicorn configuration of the control plane, for every way it is started:
`python -m mediaplane.control`, `mediaplane up` (system.py) and the tests' instances.

What it sets for every one of them: the keep-alive of idle HTTP connections, the
WebSocket keep-alive (docs/signaling.md#keep-alive-and-lost-media), and the largest
WebSocket message, which is the signaling protocol's: a larger frame is refused by
its header (close 1009) before its payload is read, so no frame is buffered past the
protocol's limit (uvicorn's default would read 16 MiB). Its WebSocket protocol drops a
connection whose keep-alive ping went unanswered at once, TLS too (ws_keepalive.py).
"""

from __future__ import annotations

from typing import Any

import uvicorn

from mediaplane.control.ws_keepalive import KeepaliveAbortProtocol
from mediaplane.settings import SERVER_KEEP_ALIVE_S, Settings

# On stop, open WebSockets are told to close; after this long they are cut (a peer that
# vanished over TLS never answers the shutdown: uvicorn would wait for it without end),
# then the app's shutdown (recordings, egresses, injections) runs in full.
GRACEFUL_SHUTDOWN_S = 5


def control_config(
    app: Any, settings: Settings, *, host: str, port: int, log_level: str, **extra: Any
) -> uvicorn.Config:
    """`extra`: what differs between the callers (log config, TLS files)."""
    extra.setdefault("timeout_graceful_shutdown", GRACEFUL_SHUTDOWN_S)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        ws_max_size=settings.signaling_max_message_bytes,
        ws=KeepaliveAbortProtocol,
        **extra,
    )
