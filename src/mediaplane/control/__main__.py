"""`python -m mediaplane.control`: run one control-plane instance on its own.

Redis is required (MEDIAPLANE_REDIS_URL). With MEDIAPLANE_SFU_DISCOVERY=redis
the instance uses the SFU nodes registered there; otherwise the one SFU at
MEDIAPLANE_SFU_HOST:MEDIAPLANE_SFU_PORT.
"""

from __future__ import annotations

import logging

import uvicorn

from mediaplane.control.app import create_app
from mediaplane.observability.logs import setup_logging
from mediaplane.reachability import ReachError, prepare, ssl_files
from mediaplane.settings import SERVER_KEEP_ALIVE_S, Settings


def main() -> None:
    settings = Settings()
    setup_logging("control", settings.log_format, settings.log_level)
    if not settings.redis_url:
        raise SystemExit("MEDIAPLANE_REDIS_URL is required for a control-plane instance")
    sfu_url = None
    if settings.sfu_discovery == "static":
        sfu_url = f"ws://{settings.sfu_host}:{settings.sfu_port}/rpc"
    try:
        reach = prepare(settings)  # https unless loopback or MEDIAPLANE_TLS=off
    except ReachError as e:
        raise SystemExit(str(e)) from None
    for warning in reach.warnings:
        logging.getLogger("mediaplane.control").warning("%s", warning)
    app = create_app(settings, sfu_url=sfu_url, redis_url=settings.redis_url)
    certfile, keyfile = ssl_files(reach)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn logs through the root handler (text or JSON)
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )


if __name__ == "__main__":
    main()
