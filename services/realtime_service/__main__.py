"""`python -m services.realtime_service` serves one gateway replica on $HOST:$PORT."""

from __future__ import annotations

import gc
import logging

from services.realtime_service.app import create_app
from services.realtime_service.settings import RealtimeSettings
from services.shared.logs import configure_logging
from services.shared.web import serve

log = logging.getLogger("services.realtime_service")

# What is still in progress once the drain (send_clients_elsewhere) is over belongs to
# clients already sent elsewhere: long-polls of sessions that are gone, WebSockets
# being closed. Nothing there is worth aiohttp's default 10 s wait per connection.
AFTER_DRAIN_SECONDS = 1.0


def main() -> None:
    settings = RealtimeSettings.from_env()
    configure_logging("realtime", settings.common.log_level)
    log.info("starting", extra={"replica": settings.replica_name, "port": settings.common.port})
    tune_garbage_collector()
    serve(create_app(settings), settings.common.host, settings.common.port, AFTER_DRAIN_SECONDS)


def tune_garbage_collector() -> None:
    """Make full collections rare: with thousands of connections they pause for 100+ ms.

    Every connection keeps hundreds of long-lived objects that the cyclic collector
    walks on each full collection, which showed up as the p99 tail of fan-out latency.
    Young generations are still collected often, so short-lived cycles are still freed.
    """
    gc.freeze()  # what start-up allocated is never garbage
    gc.set_threshold(50_000, 50, 100)


if __name__ == "__main__":
    main()
