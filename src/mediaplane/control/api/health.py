"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from mediaplane.control.deps import RoomsDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(rooms: RoomsDep) -> JSONResponse:
    """Redis answers and a connection to an SFU node is up."""
    redis_ok = await rooms.store.ping()
    sfu_ok = rooms.pool.connected
    ok = redis_ok and sfu_ok
    body = {"status": "ready" if ok else "not ready", "redis": redis_ok, "sfu": sfu_ok,
            "sfuNodes": sorted(rooms.pool.clients),
            "instance": rooms.instance_id, "rooms": len(rooms.rooms)}  # fmt: skip
    return JSONResponse(body, status_code=200 if ok else 503)
