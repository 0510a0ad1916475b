"""A namespace's network link, made worse for real (root): nftables in the namespace for
blocking, a netdev ingress hook on both ends of its veth for random loss, tbf for rate.

    link = Link(lan, 1)
    with link.block_udp() as hits:              # UDP in and out dropped (not loopback)
    with link.allow_only_tcp({443, 8080}):      # nothing but TCP to/from those ports
    with link.outage():                         # every packet dropped (not loopback)
    with link.loss(5):                          # 5 % of packets each way, at random
    with link.rate(500):                        # 500 kbit/s each way (tbf)

Every block removes what it added, whatever happens inside. `Hits.packets` counts what
the rules dropped (read after the block): a test can show its firewall was in the way.
Only the test's own namespaces and their veths are touched (netns.Lan).
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from tests.support.netns import Lan


class Hits:
    def __init__(self) -> None:
        self.packets = 0


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=10).stdout


@dataclass
class Link:
    lan: Lan
    index: int

    @property
    def namespace(self) -> str:
        return self.lan.namespaces[self.index]

    def _nft(self, *args: str, inside: bool = True) -> str:
        prefix = ["ip", "netns", "exec", self.namespace] if inside else []
        return _run([*prefix, "nft", *args])

    @contextmanager
    def _filter(self, rules_in: list[str], rules_out: list[str]) -> Iterator[Hits]:
        """An inet table in the namespace with input and output chains of `rules`."""
        table = f"mplink_{uuid.uuid4().hex[:8]}"
        hits = Hits()
        self._nft("add", "table", "inet", table)
        try:
            for chain, hook, rules in (("in", "input", rules_in), ("out", "output", rules_out)):
                spec = f"{{ type filter hook {hook} priority 0 ; policy accept ; }}"
                self._nft("add", "chain", "inet", table, chain, spec)
                for rule in rules:
                    self._nft("add", "rule", "inet", table, chain, *rule.split())
            yield hits
            hits.packets = _count(self._nft("list", "table", "inet", table))
        finally:
            self._nft("delete", "table", "inet", table)

    def block_udp(self) -> AbstractContextManager[Hits]:
        """Every UDP packet in or out of the namespace dropped (loopback spared)."""
        return self._filter(
            ["iifname != lo meta l4proto udp counter drop"],
            ["oifname != lo meta l4proto udp counter drop"],
        )

    def allow_only_tcp(self, ports: set[int]) -> AbstractContextManager[Hits]:
        """Nothing in or out but TCP to (out) or from (in) `ports` (loopback spared)."""
        wanted = "{ " + ", ".join(str(p) for p in sorted(ports)) + " }"
        return self._filter(
            ["iifname lo accept", f"tcp sport {wanted} accept", "counter drop"],
            ["oifname lo accept", f"tcp dport {wanted} accept", "counter drop"],
        )

    def outage(self) -> AbstractContextManager[Hits]:
        """Every packet in and out dropped (loopback spared)."""
        return self._filter(["iifname != lo counter drop"], ["oifname != lo counter drop"])

    @contextmanager
    def loss(self, percent: int) -> Iterator[Hits]:
        """`percent` % of the packets each way dropped at random (numgen), in a netdev
        ingress hook on both veth ends: the namespace's (what comes in) and the bridge's
        (what goes out)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"loss percent {percent} not in 0..100")
        table = f"mploss_{uuid.uuid4().hex[:8]}"
        hits = Hits()
        ends = ((True, self.lan.ns_device(self.index)), (False, self.lan.host_device(self.index)))
        made: list[bool] = []
        try:
            for inside, device in ends:
                self._nft("add", "table", "netdev", table, inside=inside)
                made.append(inside)
                self._nft("add", "chain", "netdev", table, "in",
                          f'{{ type filter hook ingress device "{device}" priority 0 ; }}',
                          inside=inside)  # fmt: skip
                self._nft("add", "rule", "netdev", table, "in", "numgen", "random", "mod",
                          "100", "<", str(percent), "counter", "drop", inside=inside)  # fmt: skip
            yield hits
            hits.packets = sum(
                _count(self._nft("list", "table", "netdev", table, inside=inside))
                for inside in made
            )
        finally:
            for inside in made:
                self._nft("delete", "table", "netdev", table, inside=inside)

    @contextmanager
    def rate(self, kbit: int, burst_bytes: int = 16000, latency_ms: int = 200) -> Iterator[None]:
        """At most `kbit` kbit/s each way (tbf on both veth ends' egress)."""
        tbf = ["tbf", "rate", f"{kbit}kbit", "burst", str(burst_bytes),
               "latency", f"{latency_ms}ms"]  # fmt: skip
        ends = (
            (["ip", "netns", "exec", self.namespace], self.lan.ns_device(self.index)),
            ([], self.lan.host_device(self.index)),
        )
        made: list[tuple[list[str], str]] = []
        try:
            for prefix, device in ends:
                _run([*prefix, "tc", "qdisc", "add", "dev", device, "root", *tbf])
                made.append((prefix, device))
            yield
        finally:
            for prefix, device in made:
                subprocess.run([*prefix, "tc", "qdisc", "del", "dev", device, "root"],
                               capture_output=True, timeout=10)  # fmt: skip


def _count(listing: str) -> int:
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))
