"""`python -m mediaplane.media`: run the media manager service."""

from __future__ import annotations

import logging

import uvicorn

from mediaplane.media.app import create_app
from mediaplane.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings()
    uvicorn.run(
        create_app(settings), host=settings.media_host, port=settings.media_port, log_level="info"
    )


if __name__ == "__main__":
    main()
