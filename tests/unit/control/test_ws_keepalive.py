"""control/ws_keepalive.py: a ping without pong aborts the transport (TLS would wait 30 s
in its shutdown for a peer that is gone). Fakes: the transport and the sans-I/O
connection, the only things the method touches."""

from __future__ import annotations

import logging

from mediaplane.control.ws_keepalive import KeepaliveAbortProtocol


class Transport:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(f"write {data!r}")

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def abort(self) -> None:
        self.calls.append("abort")

    def is_closing(self) -> bool:
        return self.closing


class Conn:
    def fail(self, code: int, reason: str) -> None:
        self.failed = (code, reason)

    def data_to_send(self) -> list[bytes]:
        return [b"close-frame"]


def protocol(transport: Transport) -> KeepaliveAbortProtocol:
    p = KeepaliveAbortProtocol.__new__(KeepaliveAbortProtocol)
    p.transport = transport  # type: ignore[assignment]
    p.conn = Conn()  # type: ignore[assignment]
    p.close_sent = False
    p.pong_timer = None
    p.pending_ping_payload = b"ping"
    p.logger = logging.getLogger("test")
    p.client = ("10.0.0.2", 5000)
    return p


def test_a_missed_pong_sends_the_close_frame_then_aborts() -> None:
    transport = Transport()
    p = protocol(transport)
    p.keepalive_timeout()
    assert transport.calls == ["write b'close-frame'", "close", "abort"]
    assert p.close_sent and p.conn.failed == (1011, "keepalive ping timeout")  # type: ignore[attr-defined]


def test_a_connection_already_closing_is_left_alone() -> None:
    transport = Transport()
    transport.closing = True
    protocol(transport).keepalive_timeout()
    assert transport.calls == []
