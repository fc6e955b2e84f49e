"""The gateway application factory: Socket.IO on aiohttp, fanned out through Redis."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import socketio
from aiohttp import web

from services.realtime_service.namespace import ChatNamespace
from services.realtime_service.settings import RealtimeSettings
from services.shared import jsonenc
from services.shared.web import health_routes

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", RealtimeSettings)
SIO = web.AppKey("sio", socketio.AsyncServer)
REDIS = web.AppKey("redis", aioredis.Redis)


def create_server(settings: RealtimeSettings) -> socketio.AsyncServer:
    """A Socket.IO server whose emits reach the clients of every replica."""
    common = settings.common
    origins: str | list[str] = "*" if "*" in common.cors_origins else list(common.cors_origins)
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=socketio.AsyncRedisManager(common.redis_url, channel=common.socketio_channel),
        cors_allowed_origins=origins,
        json=jsonenc,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_http_buffer_size=settings.max_http_buffer_size,
        logger=False,
        engineio_logger=False,
    )
    sio.register_namespace(ChatNamespace(common.jwt_secret.value, settings.replica_name))
    return sio


async def socketio_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Subscribe to the Redis channel at start (not at the first client), stop it at exit."""
    sio = app[SIO]
    sio.manager_initialized = True
    sio.manager.initialize()
    try:
        yield
    finally:
        await sio.shutdown()


async def redis_client(app: web.Application) -> AsyncIterator[None]:
    client = aioredis.Redis.from_url(app[SETTINGS].common.redis_url)
    app[REDIS] = client
    try:
        yield
    finally:
        await client.aclose()


def create_app(settings: RealtimeSettings) -> web.Application:
    """Build one gateway replica; nothing connects until the app starts."""
    app = web.Application()
    app[SETTINGS] = settings
    app[SIO] = create_server(settings)
    app[SIO].attach(app)
    app.cleanup_ctx.extend([redis_client, socketio_lifecycle])

    async def redis_ready() -> object:
        return await app[REDIS].ping()

    app.add_routes(health_routes({"redis": redis_ready}))
    return app
