"""The registry and placement primitives of StateStore against a real redis-server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from mediaplane.state.models import (
    MediaJobPlacement,
    MediaManagerRecord,
    RoomRecord,
    SfuNodeRecord,
)
from mediaplane.state.redis_server import RedisServer
from mediaplane.state.store import StateStore

pytestmark = pytest.mark.integration


async def test_concurrent_placements_agree_and_counts_follow(redis_server: RedisServer) -> None:
    a, b = await StateStore.create(redis_server.url), await StateStore.create(redis_server.url)
    try:
        name = f"place-{uuid.uuid4().hex[:6]}"
        n1, n2 = f"n1-{name}", f"n2-{name}"
        await a.create_room(RoomRecord(name=name))
        # Two instances place the same new room at once, each with its own candidate.
        ra, rb = await asyncio.gather(
            a.place_room(name, lambda r: r.node_id or n1),
            b.place_room(name, lambda r: r.node_id or n2),
        )
        assert ra is not None and rb is not None
        assert ra.node_id == rb.node_id in (n1, n2)
        first = ra.node_id
        other = n2 if first == n1 else n1
        assert await a.sfu_node_room_counts([n1, n2]) == {first: 1, other: 0}
        # The node is gone: the room moves, its router fields are cleared, counts follow.
        room = await a.get_room(name)
        assert room is not None
        room.router_id, room.extra_routers = "r1", {"r2": 7}
        await a.update_room(room)
        moved = await b.place_room(name, lambda r: other if r.node_id == first else r.node_id)
        assert moved is not None and moved.node_id == other
        assert moved.router_id is None and moved.extra_routers == {}
        assert await a.sfu_node_room_counts([n1, n2]) == {first: 0, other: 1}
        await a.delete_room(name)
        assert await a.sfu_node_room_counts([other]) == {other: 0}
        assert await a.place_room(name, lambda _r: n1) is None  # no such room
    finally:
        await a.close()
        await b.close()


async def test_expired_heartbeats_are_marked_down_once(redis_server: RedisServer) -> None:
    a, b = await StateStore.create(redis_server.url), await StateStore.create(redis_server.url)
    try:
        node = f"node-{uuid.uuid4().hex[:6]}"
        await a.register_sfu_node(SfuNodeRecord(node_id=node, url="ws://x/rpc"), ttl_s=0.3)
        alive, stale = await a.sfu_nodes()
        assert node in alive and node not in stale
        await asyncio.sleep(0.5)
        alive, stale = await b.sfu_nodes()
        assert node not in alive and node in stale
        marks = await asyncio.gather(a.mark_sfu_node_down(node), b.mark_sfu_node_down(node))
        assert sorted(marks) == [False, True]
        assert node in await a.sfu_nodes_down()
        # Registering again brings it back.
        await a.register_sfu_node(SfuNodeRecord(node_id=node, url="ws://x/rpc"), ttl_s=5)
        assert node in (await b.sfu_nodes())[0] and node not in await a.sfu_nodes_down()
        await a.deregister_sfu_node(node)
        assert node not in (await a.sfu_nodes())[0]
    finally:
        await a.close()
        await b.close()


async def test_a_vanished_manager_fails_only_what_it_was_running(
    redis_server: RedisServer,
) -> None:
    store = await StateStore.create(redis_server.url)
    try:
        mid = f"mm-{uuid.uuid4().hex[:6]}"
        for job in ("done", "running"):
            await store.place_media_job(MediaJobPlacement(job_id=f"{mid}-{job}", manager_id=mid))
        last = MediaManagerRecord(
            manager_id=mid, url="http://x", capacity=10, running=[f"{mid}-running"]
        )
        await asyncio.sleep(0.01)
        late = MediaJobPlacement(job_id=f"{mid}-late", manager_id=mid)  # after the last beat
        await store.place_media_job(late)
        failed = await store.fail_media_jobs(mid, "gone", last)
        assert sorted(failed) == [f"{mid}-late", f"{mid}-running"]
        done = await store.get_media_job(f"{mid}-done")
        assert done is not None and done.state == "placed"
        lost = await store.get_media_job(f"{mid}-running")
        assert lost is not None and lost.state == "failed" and lost.error == "gone"
    finally:
        await store.close()
