"""The floor a forwarding SFU is measured against on this machine, in the same run:
the CPU of one bare sendto(2) of a UDP packet of the same size to loopback.

A few lines of C, compiled at run time with the system's cc, send `count` packets
to a socket of their own on 127.0.0.1 and read their thread's CPU clock around
the sends only (the socket is drained between batches, outside the clock). On
loopback the kernel delivers the packet in the sender's context, so the figure
includes the receive side's kernel work, as the SFU's worker CPU does. Our worker
does more per packet (receive, route, rewrite the RTP header, send), so its cost
per forwarded packet is reported as a multiple of this floor.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mediaplane.wire.ids import Json

SOURCE = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int size = atoi(argv[1]), count = atoi(argv[2]), batch = 500;
    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    int buf = 8 << 20;
    setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(rx, (struct sockaddr *)&a, sizeof a) || getsockname(rx, (struct sockaddr *)&a, &len))
        return 2;
    char pkt[2048], sink[2048];
    memset(pkt, 0x5a, sizeof pkt);
    double spent = 0;
    int sent = 0;
    while (sent < count) {
        double t0 = cpu_s();
        for (int i = 0; i < batch && sent < count; i++, sent++)
            if (sendto(tx, pkt, size, 0, (struct sockaddr *)&a, sizeof a) != size) return 3;
        spent += cpu_s() - t0;
        while (recv(rx, sink, sizeof sink, MSG_DONTWAIT) > 0) {}
    }
    printf("%.6f\n", spent);
    return 0;
}
"""


class SendtoFloor:
    """The C program compiled once; `measure()` as often as the load may have changed."""

    def __init__(self) -> None:
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("the sendto floor needs a C compiler (cc) on this machine")
        self._dir = tempfile.TemporaryDirectory(prefix="mp-floor-")
        src, self.exe = Path(self._dir.name) / "floor.c", Path(self._dir.name) / "floor"
        src.write_text(SOURCE)
        subprocess.run([cc, "-O2", "-o", str(self.exe), str(src)], check=True)

    def measure(self, packet_bytes: int, count: int = 50_000, rounds: int = 3) -> Json:
        """µs of CPU per bare sendto(2) of `packet_bytes` to loopback: median of `rounds`."""
        runs = []
        for _ in range(rounds):
            out = subprocess.run(
                [str(self.exe), str(packet_bytes), str(count)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            runs.append(float(out) / count * 1e6)
        return {
            "packet_bytes": packet_bytes,
            "count": count,
            "runs_us": [round(x, 3) for x in runs],
            "us_per_sendto": statistics.median(runs),
        }

    def close(self) -> None:
        self._dir.cleanup()


def sendto_floor(packet_bytes: int, count: int = 100_000, rounds: int = 5) -> Json:
    floor = SendtoFloor()
    try:
        return floor.measure(packet_bytes, count, rounds)
    finally:
        floor.close()


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 132
    print(sendto_floor(size))
