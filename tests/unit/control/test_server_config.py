"""The control plane's one uvicorn configuration (control/server_config.py)."""

from __future__ import annotations

from mediaplane.control.server_config import GRACEFUL_SHUTDOWN_S, control_config
from mediaplane.control.ws_keepalive import KeepaliveAbortProtocol
from mediaplane.settings import SERVER_KEEP_ALIVE_S, Settings


def app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("never called")


def test_the_websocket_limit_is_the_signaling_protocols() -> None:
    s = Settings(env="test", signaling_max_message_bytes=4096, ws_ping_interval_s=3.0)
    config = control_config(app, s, host="127.0.0.1", port=1, log_level="info")
    assert config.ws_max_size == 4096  # not uvicorn's 16 MiB
    assert (config.ws_ping_interval, config.ws_ping_timeout) == (3.0, s.ws_ping_timeout_s)
    assert config.timeout_keep_alive == SERVER_KEEP_ALIVE_S
    assert Settings(env="test").signaling_max_message_bytes == 64 * 1024


def test_callers_add_their_own_options() -> None:
    config = control_config(
        app, Settings(env="test"), host="::1", port=2, log_level="warning",
        timeout_graceful_shutdown=1, log_config=None,
    )  # fmt: skip
    assert (config.host, config.port, config.timeout_graceful_shutdown) == ("::1", 2, 1)
    assert config.log_config is None


def test_every_instance_uses_the_protocol_that_drops_a_dead_connection() -> None:
    config = control_config(app, Settings(env="test"), host="127.0.0.1", port=1, log_level="info")
    assert config.ws is KeepaliveAbortProtocol


def test_a_stop_waits_for_open_websockets_only_so_long() -> None:
    """Every instance (up, python -m, tests) cuts sockets still open after 5 s: a peer gone
    over TLS never completes the shutdown (test_web_outage's network change hung 15 s+)."""
    config = control_config(app, Settings(env="test"), host="127.0.0.1", port=1, log_level="info")
    assert config.timeout_graceful_shutdown == GRACEFUL_SHUTDOWN_S == 5
