"""The API application factory: routes, middlewares and one cleanup context per resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
import orjson
from aiohttp import web

from services.api_service import endpoints, openapi, routes
from services.api_service.bulkhead import Bulkhead
from services.api_service.db.migrate import migrate
from services.api_service.db.pool import FairPool
from services.api_service.keys import (
    API_DOCUMENT,
    DB_POOL,
    MESSAGE_WRITER,
    PASSWORDS,
    RATE_LIMITS,
    READ_NOTICES,
    REDIS,
    RELAY,
    SETTINGS,
    TOKENS,
)
from services.api_service.middleware import request_middleware
from services.api_service.passwords import Passwords
from services.api_service.ratelimit import RateLimits, RedisLimitsConfig
from services.api_service.read_notices import ReadNotices
from services.api_service.relay import OutboxRelay, RelayConfig
from services.api_service.settings import ApiSettings
from services.api_service.webpage import web_routes
from services.api_service.writer import MessageWriter
from services.shared.auth import TokenVerifier
from services.shared.redis_clients import waiting_redis_client
from services.shared.web import health_routes

log = logging.getLogger(__name__)


async def database(app: web.Application) -> AsyncIterator[None]:
    """A connection pool, checked and migrated before the first request."""
    settings = app[SETTINGS]
    pool = await asyncpg.create_pool(
        settings.database_url.value,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        reset=keep_session_state,
    )
    try:
        async with pool.acquire() as conn:
            await conn.execute("SELECT 1")
            if settings.migrate_on_start:
                await migrate(conn)
        app[DB_POOL] = FairPool(pool, settings.db_pool_max)
        yield
    finally:
        await pool.close()


async def keep_session_state(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query when a connection goes back to the pool.

    That query (unlock all advisory locks, close cursors, UNLISTEN, RESET ALL) is a
    second round trip on every request, and nothing here leaves such state behind on a
    pooled connection: no SET, LISTEN or cursor outlives its statement, and the only
    session lock (migrations) is released in a `finally`. asyncpg still rolls back a
    transaction left open before calling this. The relay's LISTEN and advisory lock
    live on its own connection, outside the pool.
    """


async def redis_client(app: web.Application) -> AsyncIterator[None]:
    """A Redis client for readiness checks and read notices, and the rate limits in Redis."""
    settings = app[SETTINGS]
    client = waiting_redis_client(settings.common.redis_url.value)
    app[REDIS] = client
    app[READ_NOTICES] = ReadNotices(
        client,
        settings.common.redis_keys,
        timeout_seconds=settings.rate_limit_redis_timeout_seconds,
        retry_seconds=settings.rate_limit_redis_retry_seconds,
    )
    limits = RateLimits(
        RedisLimitsConfig(
            settings.common.redis_url,
            key_prefix=settings.common.redis_keys.rate_limit_prefix,
            timeout_seconds=settings.rate_limit_redis_timeout_seconds,
            retry_seconds=settings.rate_limit_redis_retry_seconds,
        ),
        settings.rate_limits(),
    )
    app[RATE_LIMITS] = limits
    try:
        yield
    finally:
        await limits.close()
        await client.aclose()


async def message_pipeline(app: web.Application) -> AsyncIterator[None]:
    """The group-commit writer of posted messages and the relay that publishes them."""
    settings = app[SETTINGS]
    relay = OutboxRelay(
        RelayConfig(
            database_url=settings.database_url,
            redis_url=settings.common.redis_url,
            keys=settings.common.redis_keys,
            stream_max_len=settings.stream_max_len,
            stream_max_age_seconds=settings.stream_max_age_seconds,
            poll_seconds=settings.relay_poll_seconds,
            linger_seconds=settings.relay_linger_seconds,
        )
    )
    app[RELAY] = relay
    relay.start()
    writer = MessageWriter(app[DB_POOL], relay)
    app[MESSAGE_WRITER] = writer
    writer.start()
    try:
        yield
    finally:
        await writer.stop()
        await relay.stop()


async def password_hasher(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[PASSWORDS] = Passwords(settings.password_hash_workers, settings.password_hash_max_pending)
    try:
        yield
    finally:
        app[PASSWORDS].close()


def create_app(settings: ApiSettings) -> web.Application:
    """Build the API; nothing connects until the app starts."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_middleware(settings.common.cors_origins, settings.request_body_timeout_seconds)
        ],
    )
    app[SETTINGS] = settings
    app[TOKENS] = TokenVerifier(
        settings.common.jwt_secret.value, settings.common.jwt_max_lifetime_seconds
    )
    app.cleanup_ctx.extend([password_hasher, database, redis_client, message_pipeline])

    async def postgres_ready() -> object:
        async with app[DB_POOL].acquire() as conn:
            return await conn.fetchval("SELECT 1")

    async def redis_ready() -> object:
        return await app[REDIS].ping()

    history_reads = Bulkhead(
        "history", settings.history_max_concurrent_reads, settings.history_max_waiting_reads
    )
    # Posting needs only PostgreSQL: without Redis the limits count in memory and the
    # relay publishes later, so a Redis outage must not take every API out of rotation.
    probes = {
        route.path: route.handler
        for route in health_routes({"postgres": postgres_ready}, optional={"redis": redis_ready})
    }
    table = endpoints.api_routes(
        settings, probes["/healthz"], probes["/readyz"], history_reads.bound
    )
    routes.register(app, table)
    app[API_DOCUMENT] = orjson.dumps(
        openapi.build_openapi(settings, table), option=orjson.OPT_INDENT_2
    )
    app.add_routes(web_routes(settings.web_root))
    return app
