"""`python -m services.api_service` serves the API; `... migrate` applies migrations and exits."""

from __future__ import annotations

import argparse
import asyncio
import logging

import asyncpg

from services.api_service.app import create_app
from services.api_service.db.migrate import migrate
from services.api_service.settings import ApiSettings
from services.shared.logs import configure_logging
from services.shared.web import serve

log = logging.getLogger("services.api_service")


async def _migrate_only(settings: ApiSettings) -> None:
    conn = await asyncpg.connect(settings.database_url.value)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    log.info("migrations done", extra={"applied": applied})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.api_service")
    parser.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve")
    args = parser.parse_args(argv)
    settings = ApiSettings.from_env()
    configure_logging("api", settings.common.log_level)
    if args.command == "migrate":
        asyncio.run(_migrate_only(settings))
        return
    log.info("starting", extra={"host": settings.common.host, "port": settings.common.port})
    serve(create_app(settings), settings.common.host, settings.common.port)


if __name__ == "__main__":
    main()
