"""`python -m mediaplane.media`: run the media manager service."""

from __future__ import annotations

import uvicorn

from mediaplane.media.app import create_app
from mediaplane.observability.logs import setup_logging
from mediaplane.settings import SERVER_KEEP_ALIVE_S, Settings


def main() -> None:
    settings = Settings()
    setup_logging("media-manager", settings.log_format, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.media_host,
        port=settings.media_port,
        log_level=settings.log_level.lower(),
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
        log_config=None,  # uvicorn's loggers go to the root handler set up above
    )


if __name__ == "__main__":
    main()
