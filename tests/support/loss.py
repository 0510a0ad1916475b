"""Real packet loss on one UDP port, with nftables (root; loopback traffic goes through
the output hook): every packet sent to the port is dropped while the block runs."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


def _nft(*args: str) -> str:
    done = subprocess.run(["nft", *args], check=True, capture_output=True, text=True, timeout=10)
    return done.stdout


class Drop:
    """Counts what the rule dropped (read after the block)."""

    def __init__(self) -> None:
        self.packets = 0


@contextmanager
def drop_udp_to(port: int) -> Iterator[Drop]:
    """Drop every UDP packet to `port` on this host while inside the block."""
    table = f"mptest_{uuid.uuid4().hex[:8]}"
    drop = Drop()
    _nft("add", "table", "inet", table)
    try:
        _nft("add", "chain", "inet", table, "out",
             "{ type filter hook output priority 0 ; policy accept ; }")  # fmt: skip
        _nft("add", "rule", "inet", table, "out", "udp", "dport", str(port), "counter", "drop")
        yield drop
        listing = _nft("list", "table", "inet", table)
        found = re.search(r"counter packets (\d+)", listing)
        drop.packets = int(found.group(1)) if found else 0
    finally:
        _nft("delete", "table", "inet", table)
