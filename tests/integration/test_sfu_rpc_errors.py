"""Bad RPC input gets a typed error or a clean close, and the SFU keeps serving."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mediaplane.settings import Settings
from mediaplane.sfu import SfuAuthError, SfuClient, SfuProcess, SfuRpcError
from mediaplane.sfu.models import Notification

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


async def _raw(sfu: SfuProcess, secret: str | None = None) -> ClientConnection:
    headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
    return await connect(sfu.url, additional_headers=headers, max_size=None)


async def _call(ws: ClientConnection, frame: str | bytes) -> dict[str, Any]:
    await ws.send(frame)
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return reply


async def test_missing_or_wrong_secret_is_closed_4001(sfu: SfuProcess) -> None:
    for secret in (None, "wrong-secret", sfu.secret + "x"):
        ws = await _raw(sfu, secret)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "unauthorized")
    with pytest.raises(SfuAuthError):
        await SfuClient.create(sfu.url, "wrong-secret", reconnect=False)


async def test_malformed_frames_get_typed_errors_on_the_same_socket(sfu: SfuProcess) -> None:
    ws = await _raw(sfu, sfu.secret)
    cases: list[tuple[str | bytes, str, int | None]] = [
        ("not json", "BAD_MESSAGE", None),
        ("[1,2,3]", "BAD_MESSAGE", None),
        ('{"method": "server.stats"}', "BAD_MESSAGE", None),
        ('{"id": -1, "method": "server.stats"}', "BAD_MESSAGE", None),
        ('{"id": 1}', "BAD_MESSAGE", 1),
        ('{"id": 2, "method": "no.such"}', "UNKNOWN_METHOD", 2),
        ('{"id": 3, "method": "__proto__"}', "UNKNOWN_METHOD", 3),
        ('{"id": 4, "method": "router.create", "params": []}', "INVALID_PARAMS", 4),
        ('{"id": 5, "method": "router.create", "params": {"roomId": 5}}', "INVALID_PARAMS", 5),
        (
            '{"id": 6, "method": "transport.createPlain", "params": {"routerId": "x"}}',
            "NOT_FOUND",
            6,
        ),
        (
            '{"id": 7, "method": "consumer.resume", "params": {"consumerId": "nope"}}',
            "NOT_FOUND",
            7,
        ),
        (b"\x00\x01binary", "BAD_MESSAGE", None),
    ]
    for frame, code, req_id in cases:
        reply = await _call(ws, frame)
        assert reply["ok"] is False, (frame, reply)
        assert reply["error"]["code"] == code, (frame, reply)
        assert reply["id"] == req_id, (frame, reply)
        assert reply["error"]["message"]
    ok = await _call(ws, '{"id": 99, "method": "server.stats"}')
    assert ok["ok"] is True
    await ws.close()


async def test_wrong_types_name_the_field(client: SfuClient) -> None:
    router = await client.create_router("errors-types")
    try:
        bad: list[tuple[str, dict[str, Any], str]] = [
            ("transport.createPlain", {"routerId": router.router_id, "rtcpMux": "yes"}, "rtcpMux"),
            ("transport.createWebRtc", {"routerId": router.router_id, "enableUdp": 1}, "enableUdp"),
            ("transport.produce", {"transportId": 7}, "transportId"),
            (
                "observer.createAudioLevel",
                {"routerId": router.router_id, "maxEntries": 0},
                "maxEntries",
            ),
        ]
        for method, params, field in bad:
            with pytest.raises(SfuRpcError) as info:
                await client.request(method, params)
            assert info.value.code == "INVALID_PARAMS"
            assert field in info.value.message
        plain = await client.create_plain_transport(router.router_id)
        with pytest.raises(SfuRpcError) as info:
            await client.produce(plain.transport_id, "audio", {"codecs": "nope"})
        assert info.value.code in ("INVALID_PARAMS", "INVALID_STATE")
        with pytest.raises(SfuRpcError) as info:
            await client.connect_plain_transport(plain.transport_id, ip="not an ip", port=5000)
        assert info.value.code == "INVALID_PARAMS"
        with pytest.raises(SfuRpcError) as info:
            await client.request(
                "transport.createPlain",
                {"routerId": router.router_id, "srtpCryptoSuite": "ROT13"},
            )
        assert info.value.code == "INVALID_PARAMS" and "srtpCryptoSuite" in info.value.message
        # State conflicts are the caller's: INVALID_STATE, not INTERNAL.
        await client.connect_plain_transport(plain.transport_id, ip="127.0.0.1", port=5000)
        with pytest.raises(SfuRpcError) as info:
            await client.connect_plain_transport(plain.transport_id, ip="127.0.0.1", port=5001)
        assert info.value.code == "INVALID_STATE", info.value
        opus = {"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}
        params = {"codecs": [opus], "encodings": [{"ssrc": 777}]}
        await client.produce(plain.transport_id, "audio", params)
        with pytest.raises(SfuRpcError) as info:
            await client.produce(plain.transport_id, "audio", params)
        assert info.value.code == "INVALID_STATE", info.value
    finally:
        await client.close_router(router.router_id)


async def test_a_router_can_avoid_workers(client: SfuClient) -> None:
    """A spanning room's next router goes to another worker than the room's, whatever the
    workers' loads (this SFU has two)."""
    first = await client.create_router("avoid-a")
    others: list[str] = []
    try:
        for i in range(3):  # whichever worker is least loaded now, it is avoided
            r = await client.create_router(f"avoid-b{i}", avoid_workers=[first.worker_pid])
            others.append(r.router_id)
            assert r.worker_pid != first.worker_pid, (r, first)
        again = await client.create_router("avoid-a", avoid_workers=[first.worker_pid])
        assert again.router_id == first.router_id  # an existing room's router stays put
        workers = {w["pid"] for w in (await client.request("server.info"))["workers"]}
        alone = await client.create_router("avoid-c", avoid_workers=sorted(workers))
        others.append(alone.router_id)
        assert alone.worker_pid in workers  # every worker avoided: any of them
        for bad in ("x", [1.5], [-1], list(range(65))):
            with pytest.raises(SfuRpcError) as info:
                await client.request("router.create", {"roomId": "avoid-d", "avoidWorkerPids": bad})
            assert info.value.code == "INVALID_PARAMS" and "avoidWorkerPids" in info.value.message
    finally:
        for router_id in (first.router_id, *others):
            await client.close_router(router_id)


async def test_oversize_frame_closes_1009_and_others_keep_working(
    sfu: SfuProcess, client: SfuClient
) -> None:
    router = await client.create_router("oversize-keeps")
    try:
        kept = await client.create_plain_transport(router.router_id)
        before = await client.server_stats()
        ws = await _raw(sfu, sfu.secret)
        big = json.dumps({"id": 1, "method": "server.stats", "params": {"x": "a" * 300_000}})
        await ws.send(big)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        # Only the offending socket went: the other client's router and transport are
        # still there (the same counts as before), and it can keep using them.
        assert await client.server_stats() == before
        assert before.routers >= 1 and before.transports >= 1
        again = await client.create_plain_transport(router.router_id)
        assert again.transport_id != kept.transport_id
        assert (await client.server_stats()).transports == before.transports + 1
        fresh = await SfuClient.create(sfu.url, sfu.secret)
        assert [w.pid for w in (await fresh.server_info()).workers] == [
            w.pid for w in (await client.server_info()).workers
        ]  # the same SFU process and workers, not a restarted one
        await fresh.close()
    finally:
        await client.close_router(router.router_id)


async def test_closing_a_router_releases_everything(client: SfuClient) -> None:
    before = await client.server_stats()
    router = await client.create_router("errors-leak")
    assert (await client.create_router("errors-leak")).router_id == router.router_id
    t = await client.create_plain_transport(router.router_id, comedia=True)
    p = await client.produce(
        t.transport_id,
        "audio",
        {
            "codecs": [
                {"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}
            ],
            "encodings": [{"ssrc": 1234}],
        },
    )
    t2 = await client.create_plain_transport(router.router_id)
    await client.consume(t2.transport_id, p.producer_id, router.rtp_capabilities)
    await client.create_webrtc_transport(router.router_id)
    await client.create_active_speaker_observer(router.router_id)
    mid = await client.server_stats()
    assert mid.transports == before.transports + 3
    assert (mid.producers, mid.consumers) == (before.producers + 1, before.consumers + 1)
    await client.close_router(router.router_id)
    after = await client.server_stats()
    assert after.model_dump() == before.model_dump()


@pytest.fixture
async def own_sfu(settings: Settings) -> AsyncIterator[SfuClient]:
    """An SFU of this test's own: killing its worker must not touch other tests' rooms."""
    proc = await SfuProcess.start(settings, port=0, num_workers=2)
    client = await SfuClient.create(proc.url, proc.secret)
    try:
        yield client
    finally:
        await client.close()
        await proc.stop()


async def test_killed_worker_is_replaced_and_its_rooms_reported(own_sfu: SfuClient) -> None:
    client = own_sfu
    died: asyncio.Queue[Notification] = asyncio.Queue()
    client.add_listener(lambda n: died.put_nowait(n) if n.notification == "worker.died" else None)
    rooms = [f"kill-{i}" for i in range(4)]
    routers = {r: await client.create_router(r) for r in rooms}
    victim = routers[rooms[0]].worker_pid
    on_victim = {r for r, info in routers.items() if info.worker_pid == victim}
    # Least-loaded placement: 4 empty rooms over 2 workers is 2 and 2.
    assert len(on_victim) == 2, {r: i.worker_pid for r, i in routers.items()}
    pids_before = {w.pid for w in (await client.server_info()).workers}

    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    note = await asyncio.wait_for(died.get(), 2.0)
    elapsed = time.monotonic() - t0

    assert note.get("pid") == victim
    assert set(note.get("roomIds")) == on_victim
    new_pid = note.get("newPid")
    assert isinstance(new_pid, int) and new_pid not in pids_before
    info = await client.server_info()
    pids_after = {w.pid for w in info.workers}
    assert victim not in pids_after and new_pid in pids_after
    assert len(pids_after) == len(pids_before)
    log.info("measured: worker.died after %.3f s, rooms %s", elapsed, sorted(on_victim))
    assert elapsed < 2.0
    # The rooms can be placed again; the survivors kept their routers.
    again = await client.create_router(rooms[0])
    assert again.router_id != routers[rooms[0]].router_id
    for r in set(rooms) - on_victim:
        assert (await client.create_router(r)).router_id == routers[r].router_id
    for r in rooms:
        await client.close_router((await client.create_router(r)).router_id)
