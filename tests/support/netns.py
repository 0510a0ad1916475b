"""Private network namespaces on one bridge, for multi-node tests (needs root).

`Lan` makes a Linux bridge in the test's namespace with a private /24
(10.213.x.0/24, x picked free), and one namespace per node joined to it by a
veth pair: node i gets 10.213.x.(i+2), the bridge (so the test and a Redis
bound there) 10.213.x.1. Every name carries a random suffix, so parallel runs
do not collide; `close()` deletes the namespaces (their veths go with them) and
the bridge. Processes started with `exec()` run inside a namespace by argv
(`ip netns exec NS ...`), never through a shell.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from typing import BinaryIO


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _append(path: str) -> BinaryIO:
    return open(path, "ab")  # closed by the caller's with


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root for ip netns"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is missing"
    return None


def _free_subnet() -> str:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for _ in range(100):
        prefix = f"10.213.{random.randint(1, 254)}"
        if f" {prefix}." not in used:
            return prefix
    raise RuntimeError("no free 10.213.x.0/24 subnet")


@dataclass
class Lan:
    prefix: str
    suffix: str
    bridge: str
    namespaces: list[str] = field(default_factory=list)
    addresses: dict[int, str] = field(default_factory=dict)  # readdressed namespaces

    @property
    def host_ip(self) -> str:
        return f"{self.prefix}.1"

    def ip(self, index: int) -> str:
        return f"{self.prefix}.{index + 2}"

    def host_device(self, index: int) -> str:
        """The bridge end of namespace `index`'s veth (in the test's namespace)."""
        return f"mpv{self.suffix}{index}h"

    def ns_device(self, index: int) -> str:
        """Namespace `index`'s end of its veth (inside the namespace)."""
        return f"mpv{self.suffix}{index}n"

    @classmethod
    def create(cls, count: int) -> Lan:
        suffix = uuid.uuid4().hex[:6]
        lan = cls(_free_subnet(), suffix, f"mpbr{suffix}")
        try:
            _ip("link", "add", lan.bridge, "type", "bridge")
            _ip("addr", "add", f"{lan.host_ip}/24", "dev", lan.bridge)
            _ip("link", "set", lan.bridge, "up")
            for i in range(count):
                ns = f"mp-{suffix}-{i}"
                host_end, ns_end = lan.host_device(i), lan.ns_device(i)
                _ip("netns", "add", ns)
                lan.namespaces.append(ns)
                _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
                _ip("link", "set", host_end, "master", lan.bridge)
                _ip("link", "set", host_end, "up")
                _ip("link", "set", ns_end, "netns", ns)
                _ip("-n", ns, "addr", "add", f"{lan.ip(i)}/24", "dev", ns_end)
                _ip("-n", ns, "link", "set", ns_end, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            lan.close()
            raise
        return lan

    def readdress(self, index: int, host: int) -> str:
        """Move namespace `index` to the LAN address `prefix.host` (a network change: the
        old address is gone, sockets bound to it are dead); the new address."""
        ns, dev = self.namespaces[index], f"mpv{self.suffix}{index}n"
        old = self.addresses.get(index, self.ip(index))
        new = f"{self.prefix}.{host}"
        # The old one first: a second address of the same /24 is a secondary, deleted
        # with the primary.
        _ip("-n", ns, "addr", "del", f"{old}/24", "dev", dev)
        _ip("-n", ns, "addr", "add", f"{new}/24", "dev", dev)
        self.addresses[index] = new
        return new

    async def exec(
        self, index: int, argv: list[str], env: dict[str, str], *, log_path: str
    ) -> asyncio.subprocess.Process:
        """Start argv inside namespace `index`; stdout piped, stderr to `log_path`."""
        with _append(log_path) as log_file:
            return await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", self.namespaces[index], *argv,
                env=env, stdout=asyncio.subprocess.PIPE, stderr=log_file,
                start_new_session=True,
            )  # fmt: skip

    def close(self) -> None:
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        self.namespaces.clear()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=10)
