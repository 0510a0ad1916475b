"""uvicorn's WebSocket protocol, but a failed keep-alive drops the connection at once.

uvicorn (its websockets sans-I/O protocol, the `auto` choice) answers a ping that got
no pong within ws_ping_timeout by sending a close frame and calling transport.close().
Over plain TCP that loses the connection at once and the app gets its disconnect. Over
TLS, close() first runs the TLS shutdown: it waits for the peer's close_notify, up to
asyncio's SSL shutdown timeout (30 s), and a peer that is gone never sends one. Measured
with https on a bridge address (test_web_outage): a participant whose network vanished
stayed in the room 36.4 s instead of ~6 s. Nobody is there to shut TLS down with, so
this protocol aborts the transport after writing the close frame (best effort).
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class KeepaliveAbortProtocol(WebSocketsSansIOProtocol):
    def keepalive_timeout(self) -> None:
        closing = self.close_sent or self.transport.is_closing()
        super().keepalive_timeout()  # close frame, close_sent, transport.close()
        if not closing:
            self.transport.abort()  # connection_lost now: the app's disconnect
