"""`python -m services.realtime_service` serves one gateway replica on $HOST:$PORT."""

from __future__ import annotations

import logging

from services.realtime_service.app import create_app
from services.realtime_service.settings import RealtimeSettings
from services.shared.logs import configure_logging
from services.shared.web import serve

log = logging.getLogger("services.realtime_service")


def main() -> None:
    settings = RealtimeSettings.from_env()
    configure_logging("realtime", settings.common.log_level)
    log.info("starting", extra={"replica": settings.replica_name, "port": settings.common.port})
    serve(create_app(settings), settings.common.host, settings.common.port)


if __name__ == "__main__":
    main()
