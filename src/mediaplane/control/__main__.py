"""`python -m mediaplane.control`: run one control-plane instance on its own.

Redis is required (MEDIAPLANE_REDIS_URL). With MEDIAPLANE_SFU_DISCOVERY=redis
the instance uses the SFU nodes registered there; otherwise the one SFU at
MEDIAPLANE_SFU_HOST:MEDIAPLANE_SFU_PORT.
"""

from __future__ import annotations

import logging

import uvicorn

from mediaplane.control.app import create_app
from mediaplane.control.server_config import control_config
from mediaplane.observability.logs import setup_logging
from mediaplane.reachability import ReachError, prepare, ssl_files
from mediaplane.settings import Settings


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
    config = control_config(
        app, settings, host=settings.host, port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn logs through the root handler (text or JSON)
        ssl_certfile=certfile, ssl_keyfile=keyfile,
    )  # fmt: skip
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
