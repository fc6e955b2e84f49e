"""The gateway application factory: Socket.IO on aiohttp, fanned out through Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import redis.asyncio as aioredis
import socketio
from aiohttp import web
from aiohttp.typedefs import Middleware

from services.realtime_service import admin_ui
from services.realtime_service.connections import UserConnections
from services.realtime_service.delivery import OrderedRedisManager, close_transport
from services.realtime_service.history import HistoryReader
from services.realtime_service.inbound import GatewayPacket, RefusedPacket
from services.realtime_service.namespace import ChatNamespace
from services.realtime_service.presence import PresenceSweeper
from services.realtime_service.reads import ReadNoticeListener
from services.realtime_service.revocations import RevocationListener
from services.realtime_service.room_state import RoomStateListener
from services.realtime_service.settings import RealtimeSettings
from services.realtime_service.transport import (
    FastEngineIOServer,
    FastSocket,
    GatewayLimits,
    answer_every_method,
)
from services.realtime_service.typing_indicators import TypingRelay
from services.shared import jsonenc
from services.shared.metrics import http_metrics_middleware, metrics_handler
from services.shared.redis_clients import waiting_redis_client
from services.shared.web import health_routes

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", RealtimeSettings)
SIO = web.AppKey("sio", socketio.AsyncServer)
REDIS = web.AppKey("redis", aioredis.Redis)
CONNECTIONS = web.AppKey("connections", UserConnections)
REVOCATIONS = web.AppKey("revocations", RevocationListener)
ROOM_STATE = web.AppKey("room_state", RoomStateListener)
PRESENCE_SWEEPER = web.AppKey("presence_sweeper", PresenceSweeper)
READS = web.AppKey("reads", ReadNoticeListener)
ADMIN_UI_ORIGIN = "https://admin.socket.io"


# What is kept of a client's WSGI environ once its namespace connect has been handled.
# (python-engineio's aiohttp driver sets REMOTE_ADDR to 127.0.0.1 for everyone, and
# PATH_INFO is always the Socket.IO path: neither tells clients apart.)
LASTING_ENVIRON_KEYS = ("HTTP_X_FORWARDED_FOR", "HTTP_USER_AGENT")


def lasting_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """The part of a handshake's environ worth keeping for the life of the connection.

    The connect handler is the last reader of the rest (the token, the headers); kept,
    it would cost about a kilobyte per connection, more with a browser's headers.
    """
    return {key: environ[key] for key in LASTING_ENVIRON_KEYS if key in environ}


# What the Admin UI must never see of a client's handshake: its credentials. The UI
# shows every HTTP_* header and the parsed query string of each client.
CREDENTIAL_HEADERS = ("HTTP_AUTHORIZATION", "HTTP_COOKIE")


def environ_for_admin_ui(environ: dict[str, Any]) -> dict[str, Any]:
    """The handshake environ less its credentials (the token in a header or `?token=`)."""
    kept = {key: value for key, value in environ.items() if key not in CREDENTIAL_HEADERS}
    query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    kept["QUERY_STRING"] = urlencode([(name, value) for name, value in query if name != "token"])
    return kept


class GatewayServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server on the faster Engine.IO transport (see transport.py).

    Unless `keep_environ` (the Admin UI lists each client's handshake headers), only
    `lasting_environ` of a client's environ is kept once it has connected to a
    namespace. Its two overrides are touchpoints (seams/socketio.py).
    """

    keep_environ = False
    # The namespaces a client may connect to; anything else gets the Socket.IO
    # specification's CONNECT_ERROR "Invalid namespace".
    known_namespaces: frozenset[str] = frozenset({"/"})

    def _engineio_server_class(self) -> type:
        return FastEngineIOServer

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """python-socketio's dispatch, with the gateway's checks around a namespace CONNECT.

        A packet `GatewayPacket` refuses closes the client's session.
        """
        try:
            namespace = self._connecting_to(data)
            if namespace is not None and namespace not in self.known_namespaces:
                # python-socketio would answer "Unable to connect".
                error = self.packet_class(
                    socketio.packet.CONNECT_ERROR,
                    data={"message": "Invalid namespace"},
                    namespace=namespace,
                )
                await self.eio.send(eio_sid, error.encode())
                return
            await super()._handle_eio_message(eio_sid, data)
        except RefusedPacket as exc:
            socket = self.eio.sockets.get(eio_sid)
            if isinstance(socket, FastSocket):
                await socket.refuse(exc.reason, exc.detail)
            return
        if namespace is not None:
            self._connected(eio_sid, namespace)

    def _connecting_to(self, data: Any) -> str | None:
        """The namespace a CONNECT packet asks for, or None for any other packet.

        A broken CONNECT packet raises RefusedPacket.
        """
        if not isinstance(data, str) or data[:1] != str(socketio.packet.CONNECT):
            return None
        pkt = self.packet_class(encoded_packet=data)
        return pkt.namespace or "/"

    def _connected(self, eio_sid: str, namespace: str) -> None:
        """After a CONNECT: release what an admitted session no longer needs.

        A session the namespace admitted loses its connect deadline and most of its environ.
        """
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None:
            return
        socket = self.eio.sockets.get(eio_sid)
        if isinstance(socket, FastSocket):
            socket.joined = True
            self.eio.release_address(socket)
        environ = self.get_environ(sid, namespace)
        if environ is None:
            return
        lasting = environ_for_admin_ui(environ) if self.keep_environ else lasting_environ(environ)
        environ.clear()
        environ.update(lasting)


def create_server(
    settings: RealtimeSettings, redis: aioredis.Redis, connections: UserConnections
) -> socketio.AsyncServer:
    """A Socket.IO server whose emits reach the clients of every replica."""
    common = settings.common
    keys = common.redis_keys
    history = HistoryReader(redis, keys.history_stream, settings.replay_max, keys.room_tails)
    manager = OrderedRedisManager(
        common.redis_url.value,
        common.redis_keys.manager_channel,
        history,
        settings.gap_check_seconds,
        settings.max_queued_packets,
        settings.max_concurrent_replays,
    )
    sio = GatewayServer(
        async_mode="aiohttp",
        client_manager=manager,
        cors_allowed_origins=allowed_origins(settings),
        json=jsonenc,
        serializer=GatewayPacket,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_http_buffer_size=settings.max_http_buffer_size,
        logger=False,
        engineio_logger=False,
    )
    sio.eio.set_limits(gateway_limits(settings))
    sio.register_namespace(
        ChatNamespace(
            common.jwt_secret.value,
            settings.replica_name,
            connections,
            common.jwt_max_lifetime_seconds,
            TypingRelay(
                redis,
                keys,
                manager.rooms_of,
                settings.presence.typing_max_members,
                spawn=sio.eio.tasks.spawn,
            ),
        )
    )
    sio.keep_environ = settings.admin_enabled
    if settings.admin_enabled:
        sio.known_namespaces = frozenset({"/", admin_ui.ADMIN_NAMESPACE})
    if settings.admin_enabled:
        # Socket.IO Admin UI; "production" mode keeps its per-event overhead low.
        admin_ui.instrument(
            sio,
            settings.admin_username,
            settings.admin_password.value,
            settings.replica_name,
            admin_ui.LoginThrottle(settings.admin_max_failures, settings.admin_lockout_seconds),
            common.trusted_proxies,
        )
    return sio


def gateway_limits(settings: RealtimeSettings) -> GatewayLimits:
    return GatewayLimits(
        connect_timeout=settings.connect_timeout_seconds,
        max_pending_sessions_per_address=settings.max_pending_sessions_per_address,
        inbound_packets_per_second=settings.inbound_packets_per_second,
        inbound_packet_burst=settings.inbound_packet_burst,
        trusted_proxies=settings.common.trusted_proxies,
    )


async def neutral_server_header(_request: web.Request, response: web.StreamResponse) -> None:
    """Every response (HTTP and the WebSocket handshake) names no framework or version."""
    response.headers["Server"] = "chat"


def allowed_origins(settings: RealtimeSettings) -> str | Callable[[str, dict[str, Any]], bool]:
    """CORS_ORIGINS plus the page's own origin (the chat page served at `/`).

    Given a list, python-engineio checks only that list and drops its same-origin
    default, which would refuse our own page behind the load balancer. So the check
    is: a listed origin, or the origin of the Host the request was sent to.
    """
    configured = settings.common.cors_origins
    if "*" in configured:
        return "*"
    listed = frozenset(configured) | ({ADMIN_UI_ORIGIN} if settings.admin_enabled else set())

    def allowed(origin: str, environ: dict[str, Any]) -> bool:
        if origin in listed:
            return True
        forwarded = environ.get("HTTP_X_FORWARDED_PROTO", "")
        scheme = forwarded.split(",")[0].strip() or environ.get("wsgi.url_scheme", "http")
        return origin == f"{scheme}://{environ.get('HTTP_HOST', '')}"

    return allowed


async def socketio_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Subscribe to the Redis channel at start (not at the first client), stop it at exit."""
    sio = app[SIO]
    manager = sio.manager
    assert isinstance(manager, OrderedRedisManager)
    await manager.start()
    manager.initialize()
    app[CONNECTIONS].start()
    app[REVOCATIONS].start()
    app[ROOM_STATE].start()
    app[PRESENCE_SWEEPER].start()
    app[READS].start()
    try:
        yield
    finally:
        await app[READS].stop()
        await app[PRESENCE_SWEEPER].stop()
        await app[ROOM_STATE].stop()
        await app[REVOCATIONS].stop()
        await app[CONNECTIONS].stop()
        await manager.stop()
        await sio.shutdown()  # cancels and awaits the server's tasks, the channel listener included
        await manager.close()


async def send_clients_elsewhere(app: web.Application) -> None:
    """On SIGTERM: close every Engine.IO session so clients reconnect to another replica.

    aiohttp has already stopped accepting connections when this runs. Closing the
    transport (not a Socket.IO disconnect, which clients treat as final) makes the
    official clients reconnect through the load balancer and recover with `lastId`.
    What each client already has queued is written first, for at most
    SHUTDOWN_GRACE_SECONDS, so a stalled client cannot hold the shutdown.
    """
    # A session already closed (a dropped slow consumer, a long-poll that timed out)
    # has nobody left to write to: waiting on its queue would only run out the grace.
    sockets = [socket for socket in app[SIO].eio.sockets.values() if not socket.closed]
    for socket in app[SIO].eio.sockets.values():
        if socket.closed:  # answers a long-poll still pending for a client that left
            socket.queue.put_nowait(None)
    # Only a backlog is worth waiting for: with an empty queue the close is all there is
    # to send, and a session whose client went away (a long-poll nobody renews) would
    # otherwise hold the exit for the whole grace period.
    backlogged = [socket for socket in sockets if not socket.queue.empty()]
    log.info("draining", extra={"clients": len(sockets), "backlogged": len(backlogged)})
    for socket in sockets:
        close_transport(socket, flush=True)
    writers_done = asyncio.gather(*(socket.queue.join() for socket in backlogged))
    try:
        await asyncio.wait_for(writers_done, app[SETTINGS].shutdown_grace_seconds)
    except TimeoutError:
        log.warning("drain timed out; exiting anyway", extra={"clients": len(sockets)})


async def redis_client(app: web.Application) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await app[REDIS].aclose()


def measured(routes: list[web.RouteDef], middleware: Middleware) -> list[web.RouteDef]:
    """`routes` with each handler run through `middleware` (as an app middleware would)."""

    def wrap(route: web.RouteDef) -> web.RouteDef:
        handler = route.handler
        assert not isinstance(handler, type), "class-based views are not measured"

        async def measured_handler(request: web.Request) -> web.StreamResponse:
            return await middleware(request, handler)

        return web.RouteDef(route.method, route.path, measured_handler, route.kwargs)

    return [wrap(route) for route in routes]


def create_app(settings: RealtimeSettings) -> web.Application:
    """Build one gateway replica; nothing connects until the app starts.

    The app has no middleware: aiohttp keeps an app middleware's frames on the stack
    of every request, WebSocket sessions included, for as long as they last. Latency
    is measured per route instead (requests to unknown paths are not measured).
    """
    metrics = http_metrics_middleware("realtime")
    app = web.Application()
    app[SETTINGS] = settings
    app[REDIS] = waiting_redis_client(settings.common.redis_url.value)
    keys = settings.common.redis_keys
    app[CONNECTIONS] = UserConnections(
        app[REDIS],
        keys,
        cap=settings.max_connections_per_user,
        lease_seconds=settings.connection_lease_seconds,
        presence=settings.presence,
    )
    app[SIO] = create_server(settings, app[REDIS], app[CONNECTIONS])
    app[REVOCATIONS] = RevocationListener(app[REDIS], keys, app[CONNECTIONS], app[SIO].disconnect)
    app[ROOM_STATE] = RoomStateListener(app[REDIS], keys, app[SIO].manager)
    app[PRESENCE_SWEEPER] = PresenceSweeper(
        app[REDIS], keys, settings.presence, settings.connection_lease_seconds
    )
    app[READS] = ReadNoticeListener(
        app[REDIS],
        keys,
        app[SIO].manager,
        settings.receipt_batch_seconds,
    )
    app[SIO].attach(app)
    answer_every_method(app, app[SIO].eio)
    app[SIO].eio.http_middleware = metrics
    app.cleanup_ctx.extend([redis_client, socketio_lifecycle])
    app.on_shutdown.append(send_clients_elsewhere)
    app.on_response_prepare.append(neutral_server_header)

    async def redis_ready() -> object:
        return await app[REDIS].ping()

    app.add_routes(measured(health_routes({"redis": redis_ready}), metrics))
    app.add_routes(measured([web.get("/metrics", metrics_handler)], metrics))
    return app
