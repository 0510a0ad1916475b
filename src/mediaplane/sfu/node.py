"""An SFU node: the Node SFU plus its heartbeat in Redis (`python -m mediaplane.sfu.node`).

The node registers itself (`mp:sfu:nodes`) and writes its load (routers,
transports, producers, consumers from the SFU's own counters) to
`mp:sfu:node:{id}` every `sfu_heartbeat_s` with a TTL of `sfu_node_ttl_s`.
Control-plane instances read those records to place rooms (SfuPool); a node
whose record expires is marked down by them. The heartbeat is written only
after a successful stats call, so an SFU that hangs or dies stops it as surely
as a node that loses power. A clean stop (SIGTERM/SIGINT) deregisters first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import time

from mediaplane.observability.logs import setup_logging
from mediaplane.settings import Settings
from mediaplane.sfu.client import SfuClient
from mediaplane.sfu.errors import SfuError
from mediaplane.sfu.process import SfuProcess
from mediaplane.state.models import SfuNodeRecord
from mediaplane.state.store import StateStore

log = logging.getLogger(__name__)
REDIS_ERRORS = (ConnectionError, TimeoutError, OSError)


class NodeRegistrar:
    """Owns one task: the heartbeat of one SFU node."""

    def __init__(
        self,
        store: StateStore,
        sfu: SfuClient,
        *,
        node_id: str,
        url: str,
        pid: int,
        ttl_s: float,
        interval_s: float,
    ) -> None:
        self.store, self.sfu = store, sfu
        self.record = SfuNodeRecord(node_id=node_id, url=url, pid=pid)
        self.ttl_s, self.interval_s = ttl_s, interval_s
        self._task: asyncio.Task[None] | None = None
        self.beats = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sfu-node-heartbeat {self.node_id}")

    @property
    def node_id(self) -> str:
        return self.record.node_id

    async def beat(self) -> None:
        info = await self.sfu.server_info()
        stats = await self.sfu.server_stats()
        rec = self.record
        rec.workers = len(info.workers)
        rec.routers, rec.transports = stats.routers, stats.transports
        rec.producers, rec.consumers = stats.producers, stats.consumers
        rec.updated_at = time.time()
        await self.store.register_sfu_node(rec, self.ttl_s)
        if self.beats == 0:
            log.info("sfu node registered node=%s url=%s", self.node_id, rec.url)
        self.beats += 1

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except SfuError as e:
                log.error("sfu node=%s: SFU not answering, heartbeat skipped: %s", self.node_id, e)
            except Exception as e:  # Redis down: keep trying, the TTL speaks for us
                log.warning("sfu node=%s: heartbeat not written: %s", self.node_id, e)
            await asyncio.sleep(self.interval_s)

    async def stop(self, *, deregister: bool) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if deregister:
            with contextlib.suppress(Exception):
                await self.store.deregister_sfu_node(self.node_id)
                log.info("sfu node deregistered node=%s", self.node_id)


async def run_node(settings: Settings) -> int:
    """Run one node until SIGTERM/SIGINT (exit 0) or until its SFU dies (exit 1)."""
    if not settings.redis_url:
        raise SystemExit("MEDIAPLANE_REDIS_URL is required for an SFU node")
    sfu = await SfuProcess.start(settings)
    client = await SfuClient.create(sfu.url, sfu.secret)
    store = await StateStore.create(settings.redis_url)
    node_id = settings.sfu_node_id or f"{socket.gethostname()}-{sfu.host}-{sfu.port}"
    registrar = NodeRegistrar(
        store, client, node_id=node_id, url=sfu.url, pid=sfu.pid,
        ttl_s=settings.sfu_node_ttl_s, interval_s=settings.sfu_heartbeat_s,
    )  # fmt: skip
    await registrar.beat()
    registrar.start()
    print(json.dumps({"event": "ready", "node": node_id, "url": sfu.url, "sfuPid": sfu.pid}))
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    died = asyncio.ensure_future(sfu.wait())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([died, stopping], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if died.done():
        log.error("sfu node=%s: the SFU exited with %s; heartbeat stopped", node_id, died.result())
        code = 1
    for fut in (died, stopping):
        fut.cancel()
    await registrar.stop(deregister=code == 0)
    await client.close()
    await sfu.stop()
    await store.close()
    return code


def main() -> None:
    settings = Settings()
    setup_logging("sfu-node", settings.log_format, settings.log_level)
    sys.exit(asyncio.run(run_node(settings)))


if __name__ == "__main__":
    main()
