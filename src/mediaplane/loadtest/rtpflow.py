"""Plain RTP audio streams in and out of this process, measured per packet.

Every packet carries its sender's tick index and send time (CLOCK_MONOTONIC, the
same clock on the whole host) in the payload, which the SFU forwards untouched.
So the receiver knows, per forwarded stream, exactly which packets arrived, how
late (one-way delay), and the RFC 3550 jitter, without trusting rewritten RTP
sequence numbers.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

PT = 100
CLOCK = 48000
PTIME_S = 0.020
PAYLOAD_BYTES = 120  # about a 48 kb/s Opus frame
OPUS_CODEC = {"mimeType": "audio/opus", "payloadType": PT, "clockRate": CLOCK, "channels": 2}
_HEAD = struct.Struct("!BBHII")
_STAMP = struct.Struct("!Id")
_EXT_LEN = struct.Struct("!H")


def opus_parameters(ssrc: int) -> dict[str, object]:
    return {"codecs": [OPUS_CODEC], "encodings": [{"ssrc": ssrc}]}


@dataclass
class Publisher:
    ssrc: int
    port: int
    host: str = "127.0.0.1"


class Sender:
    """One thread sends a packet of every publisher each 20 ms tick."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 2**20)
        self.publishers: list[Publisher] = []
        self.tick = 0
        self.sent = 0
        self.max_lag_s = 0.0
        self._stop = threading.Event()
        self._pad = os.urandom(PAYLOAD_BYTES - _STAMP.size)
        self._thread = threading.Thread(target=self._run, name="rtp-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, publisher: Publisher) -> None:
        self.publishers = [*self.publishers, publisher]  # the thread reads a snapshot

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            due = start + self.tick * PTIME_S
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
                now = time.monotonic()
            self.max_lag_s = max(self.max_lag_s, now - due)
            i = self.tick
            for p in self.publishers:
                head = _HEAD.pack(0x80, PT, i & 0xFFFF, (i * 960) & 0xFFFFFFFF, p.ssrc)
                stamp = _STAMP.pack(i & 0xFFFFFFFF, time.monotonic())
                try:
                    self.sock.sendto(head + stamp + self._pad, (p.host, p.port))
                    self.sent += 1
                except OSError:
                    pass
            self.tick += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sock.close()


@dataclass
class StreamState:
    first_at: float
    received: int = 0  # inside the window
    late: int = 0
    jitter_s: float = 0.0
    last_delay_s: float | None = None
    seen: set[int] = field(default_factory=set)  # duplicates do not count twice


class Receiver:
    """One UDP socket every consumer sends to; per-SSRC stats in a thread."""

    def __init__(self, late_after_s: float, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # beyond rmem_max when we may (root); else the capped size
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 64 * 2**20)  # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 2**20)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.late_after_s = late_after_s
        self.streams: dict[int, StreamState] = {}
        self.window: tuple[int, int] = (-1, -1)  # tick indexes counted: [start, end)
        self.packet_bytes = 0  # the largest forwarded packet seen (UDP payload)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtp-receiver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray(2048)
        view = memoryview(buf)
        streams = self.streams
        late_after = self.late_after_s
        while not self._stop.is_set():
            try:
                n = self.sock.recv_into(buf)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            if n < _HEAD.size + _STAMP.size:
                continue
            if n > self.packet_bytes:
                self.packet_bytes = n
            b0, _, _, _, ssrc = _HEAD.unpack_from(view)
            # the SFU adds header extensions (mid, audio level, ...): skip them
            offset = _HEAD.size + 4 * (b0 & 0x0F)
            if b0 & 0x10:
                if n < offset + 4:
                    continue
                offset += 4 + 4 * _EXT_LEN.unpack_from(view, offset + 2)[0]
            if n < offset + _STAMP.size:
                continue
            idx, sent_at = _STAMP.unpack_from(view, offset)
            st = streams.get(ssrc)
            if st is None:
                st = streams[ssrc] = StreamState(first_at=now)
            w0, w1 = self.window
            if not w0 <= idx < w1 or idx in st.seen:
                continue
            st.seen.add(idx)
            delay = now - sent_at
            st.received += 1
            if delay > late_after:
                st.late += 1
            if st.last_delay_s is not None:
                st.jitter_s += (abs(delay - st.last_delay_s) - st.jitter_s) / 16
            st.last_delay_s = delay

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
