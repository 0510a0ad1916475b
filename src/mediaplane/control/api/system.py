"""REST for the admin dashboard: system health, track stats, media jobs."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request

from mediaplane.control.deps import PrincipalDep, RoomsDep
from mediaplane.control.jobs.recordings import RecordingService
from mediaplane.control.urls import redact_urls

router = APIRouter(tags=["system"])


def _recordings(request: Request) -> RecordingService:
    service: RecordingService = request.app.state.recordings
    return service


@router.get("/api/system")
async def system(principal: PrincipalDep, rooms: RoomsDep, request: Request) -> dict[str, Any]:
    """SFU workers, Redis, media manager, machine load (grant: room_list)."""
    principal.require("room_list")
    out: dict[str, Any] = {
        "instance": rooms.instance_id,
        "load": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    try:
        info = await rooms.sfu.server_info()
        stats = await rooms.sfu.server_stats()
        out["sfu"] = {
            "ok": True,
            "version": info.version,
            "workers": [w.model_dump() for w in info.workers],
            "objects": stats.model_dump(),
        }
    except Exception as e:
        out["sfu"] = {"ok": False, "error": str(e)}
    out["redis"] = {"ok": await rooms.store.ping()}
    try:
        out["media"] = {"ok": True, **(await _recordings(request).media.health())}
    except Exception as e:
        out["media"] = {"ok": False, "error": str(e)}
    return out


@router.get("/api/sfu/nodes")
async def sfu_nodes(principal: PrincipalDep, rooms: RoomsDep) -> dict[str, Any]:
    """SFU nodes this instance uses, their load and rooms placed, and nodes found down."""
    principal.require("room_list")
    pool = rooms.pool
    ids = sorted(pool.clients)
    counts = await rooms.store.sfu_node_room_counts(ids) if ids else {}
    nodes = [
        {
            **pool.nodes[n].model_dump(),
            "rooms": counts.get(n, 0),
            "connected": pool.clients[n].connected,
        }
        for n in ids
        if n in pool.nodes
    ]
    down = [] if pool.is_static else await rooms.store.sfu_nodes_down()
    return {"mode": "static" if pool.is_static else "redis", "nodes": nodes, "down": down}


@router.get("/api/media/jobs")
async def media_jobs(principal: PrincipalDep, request: Request) -> list[dict[str, Any]]:
    """The media manager's jobs with their states and reasons (grant: room_list).

    Their requests carry stream keys and source credentials: every URL is redacted."""
    principal.require("room_list")
    placed = await _recordings(request).media.jobs()
    jobs: list[dict[str, Any]] = redact_urls([j.model_dump(mode="json") for j in placed])
    return jobs
