"""python-engineio internals the gateway relies on (see seams/__init__.py).

The gateway's Engine.IO session class, `FastSocket` (transport.py), subclasses
python-engineio's `AsyncSocket`. python-engineio has no hook to choose that class, and
its session methods and fields are not a documented API, so each piece of them the
gateway overrides or reads is listed here. What it does reach through public names:
the server's `on()` event handlers (where each new session is adopted),
`create_queue()` (the lean `PacketQueue`), `start_background_task()` (tasks the server
owns and cancels at shutdown), `send()`, and the aiohttp driver's
`environ["aiohttp.request"]`.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import engineio
from aiohttp import web
from engineio.async_drivers import aiohttp as aiohttp_driver
from engineio.async_server import AsyncServer
from engineio.async_socket import AsyncSocket
from engineio.base_socket import BaseSocket
from engineio.payload import Payload

from services.realtime_service.seams import Touchpoint, TouchpointChanged

SESSION_CLASS = "engineio: AsyncServer._handle_connect creates AsyncSocket (class swapped)"
POLL = "engineio: AsyncSocket.poll"
SCHEDULE_PING = "engineio: AsyncSocket.schedule_ping"
SESSION_STATE = (
    "engineio: AsyncSocket state (queue, connected, upgraded, upgrading, closing, closed,"
    " last_ping), AsyncServer.sockets"
)
SESSION_METHODS = "engineio: AsyncSocket.handle_get_request / handle_post_request / receive / close"
TRANSLATE_REQUEST = (
    "engineio: AsyncServer._async['translate_request'] (the aiohttp driver's environ)"
)

# How many packets python-engineio's own client accepts in one long-polling payload
# (`Payload.max_decode_packets`); more makes it drop the connection.
MAX_PACKETS_PER_POLL = 16


def adopt_session(socket: AsyncSocket, fast_class: type[AsyncSocket]) -> bool:
    """Make a session python-engineio has just created an instance of `fast_class`.

    python-engineio creates sessions with a hard-coded class; `fast_class` only
    overrides methods and adds class-level defaults, so switching the class of the
    new object (before anything but the OPEN packet has been queued) is safe. True if
    the session was switched.
    """
    if type(socket) is not AsyncSocket:
        return False
    socket.__class__ = fast_class
    return True


def translate_request(request: web.Request) -> dict[str, Any]:
    """python-engineio's WSGI environ for an aiohttp request, with RAW_URI as received.

    The driver's own version fills RAW_URI with `request.path_qs`, a URL serialized
    anew and cached on the request: one more copy of the query (the token included)
    for the life of a WebSocket connection. The raw request target is what RAW_URI
    means, and aiohttp already holds it.
    """
    version = request.version
    environ: dict[str, Any] = {
        "wsgi.input": request.content,
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.async": True,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": "aiohttp",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query_string or "",
        "RAW_URI": request.raw_path,
        "SERVER_PROTOCOL": f"HTTP/{version[0]}.{version[1]}",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0",
        "SERVER_NAME": "aiohttp",
        "SERVER_PORT": "0",
        "aiohttp.request": request,
    }
    for name, value in request.headers.items():
        name = name.upper()
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    environ["PATH_INFO"] = request.path
    environ["SCRIPT_NAME"] = ""
    return environ


def use_raw_uri_environ(server: AsyncServer) -> None:
    """Make `server` build each request's environ with `translate_request` above.

    A copy of the driver's table: the driver's own is module-level and shared by
    every server.
    """
    server._async = {**server._async, "translate_request": translate_request}


def _source(function: Any) -> str:
    return inspect.getsource(function)


def _check_session_class() -> None:
    connect = _source(AsyncServer._handle_connect)
    if "AsyncSocket(self, sid)" not in connect:
        raise TouchpointChanged(
            SESSION_CLASS, "_handle_connect no longer creates async_socket.AsyncSocket(self, sid)"
        )
    trigger, ping = connect.find("_trigger_event('connect'"), connect.find("schedule_ping()")
    if not 0 <= trigger < ping:
        raise TouchpointChanged(
            SESSION_CLASS, "the connect event no longer runs before the first ping is scheduled"
        )
    if "__slots__" in vars(AsyncSocket) or "__slots__" in vars(BaseSocket):
        raise TouchpointChanged(
            SESSION_CLASS, "AsyncSocket has __slots__: its class cannot be switched"
        )


def _check_poll() -> None:
    if list(inspect.signature(AsyncSocket.poll).parameters) != ["self"]:
        raise TouchpointChanged(POLL, "signature changed")
    if "self.poll()" not in _source(AsyncSocket.handle_get_request) or "s.poll()" not in _source(
        AsyncServer._handle_connect
    ):
        raise TouchpointChanged(POLL, "long-polling GETs no longer wait in poll()")
    if Payload.max_decode_packets != MAX_PACKETS_PER_POLL:
        raise TouchpointChanged(
            POLL, f"the client's payload limit is now {Payload.max_decode_packets}"
        )


def _check_schedule_ping() -> None:
    if list(inspect.signature(AsyncSocket.schedule_ping).parameters) != ["self"]:
        raise TouchpointChanged(SCHEDULE_PING, "signature changed")
    if "self.schedule_ping()" not in _source(AsyncSocket.receive):
        raise TouchpointChanged(SCHEDULE_PING, "a PONG no longer schedules the next ping")
    if "s.schedule_ping()" not in _source(AsyncServer._handle_connect):
        raise TouchpointChanged(SCHEDULE_PING, "a new session no longer schedules its first ping")
    if "self.last_ping" not in _source(AsyncSocket.schedule_ping):
        raise TouchpointChanged(SCHEDULE_PING, "last_ping no longer marks a ping cycle")


def _check_session_state() -> None:
    init = _source(BaseSocket.__init__)
    for field in (
        "self.queue = self.server.create_queue()",
        "self.upgraded",
        "self.upgrading",
        "self.closing",
        "self.closed",
        "self.connected",
        "self.last_ping",
    ):
        if field not in init:
            raise TouchpointChanged(SESSION_STATE, f"BaseSocket.__init__ no longer sets {field}")
    server = engineio.AsyncServer(async_mode="aiohttp")
    if not isinstance(getattr(server, "sockets", None), dict):
        raise TouchpointChanged(
            SESSION_STATE, "AsyncServer.sockets is no longer a dict of sessions"
        )
    if "self.queue.join()" not in _source(AsyncSocket.close):
        raise TouchpointChanged(SESSION_STATE, "close(wait=True) no longer waits for the queue")


def _check_session_methods() -> None:
    expected = {
        "handle_get_request": ["self", "environ"],
        "handle_post_request": ["self", "environ"],
        "receive": ["self", "pkt"],
        "close": ["self", "wait", "abort", "reason"],
    }
    for name, parameters in expected.items():
        method = getattr(AsyncSocket, name, None)
        if method is None or list(inspect.signature(method).parameters) != parameters:
            raise TouchpointChanged(SESSION_METHODS, f"AsyncSocket.{name} changed")
    handle = _source(AsyncServer.handle_request)
    for call in (
        "socket.handle_get_request(",
        "socket.handle_post_request(",
        "if not isinstance(r, dict):",
    ):
        if call not in handle:
            raise TouchpointChanged(
                SESSION_METHODS, f"AsyncServer.handle_request no longer has {call!r}"
            )
    if "s.handle_get_request(environ)" not in _source(AsyncServer._handle_connect):
        raise TouchpointChanged(
            SESSION_METHODS, "a WebSocket handshake no longer goes through handle_get_request"
        )
    if "UnknownPacketError" not in _source(AsyncSocket.receive):
        raise TouchpointChanged(SESSION_METHODS, "receive no longer refuses unknown packet types")


def _check_translate_request() -> None:
    server = engineio.AsyncServer(async_mode="aiohttp")
    table = getattr(server, "_async", None)
    if not isinstance(table, dict) or "translate_request" not in table:
        raise TouchpointChanged(TRANSLATE_REQUEST, "the driver table has no translate_request")
    if "self._async['translate_request']" not in _source(AsyncServer.handle_request):
        raise TouchpointChanged(
            TRANSLATE_REQUEST, "handle_request no longer builds the environ through the table"
        )
    driver = _source(aiohttp_driver.translate_request)
    for key in (
        "'RAW_URI'",
        "'aiohttp.request'",
        "'PATH_INFO'",
        "'wsgi.url_scheme'",
        "'QUERY_STRING'",
    ):
        if key not in driver:
            raise TouchpointChanged(TRANSLATE_REQUEST, f"the driver's environ changed ({key})")


TOUCHPOINTS = [
    Touchpoint(
        name=SESSION_CLASS,
        used_in=(
            "seams.engineio.adopt_session (from transport.FastEngineIOServer.on's connect handler)"
        ),
        why=(
            "python-engineio has no hook for the session class;"
            " every change below lives in FastSocket"
        ),
        saves=(
            "all of FastSocket's savings"
            " (no writer task, no ping task, no asyncio.Queue per session)"
        ),
        check=_check_session_class,
    ),
    Touchpoint(
        name=POLL,
        used_in="transport.FastSocket.poll",
        why=(
            "caps a long-polling response at what python-engineio's client accepts"
            " (it drops the connection beyond 16 packets); waits with asyncio.timeout"
            " instead of a task and timer per wake-up"
        ),
        saves=(
            "correctness for Python long-polling clients under bursts"
            " (tests/integration/test_transport.py)"
        ),
        check=_check_poll,
    ),
    Touchpoint(
        name=SCHEDULE_PING,
        used_in="transport.FastSocket.schedule_ping",
        why="pings come from the server's one Heartbeat timer instead of a task per session",
        saves="a task, a future and a timer per idle connection (see docs/INTERNALS.md)",
        check=_check_schedule_ping,
    ),
    Touchpoint(
        name=SESSION_STATE,
        used_in=(
            "transport.FastSocket, delivery.OrderedRedisManager._write, app.send_clients_elsewhere"
        ),
        why=(
            "a broadcast writes straight to an idle WebSocket or puts the packet on the"
            " session's queue, without python-engineio's per-recipient send() and its task"
        ),
        saves="the per-recipient path of every broadcast (see docs/INTERNALS.md)",
        check=_check_session_state,
    ),
    Touchpoint(
        name=SESSION_METHODS,
        used_in=(
            "transport.FastSocket (handle_get_request serves the WebSocket,"
            " the others guard inbound packets)"
        ),
        why=(
            "the WebSocket is served after python-engineio's handshake has returned, without"
            " a reader task per message; every inbound packet passes the gateway's guard"
            " (inbound.py)"
        ),
        saves=(
            "the handshake's frames and a task per read, per connection;"
            " the inbound guard's protection"
        ),
        check=_check_session_methods,
    ),
    Touchpoint(
        name=TRANSLATE_REQUEST,
        used_in="seams.engineio.use_raw_uri_environ (from transport.FastEngineIOServer.__init__)",
        why=(
            "the driver's environ caches a second serialized copy of the URL (token included)"
            " on the request, which lives as long as the WebSocket"
        ),
        saves="0.3-0.9 KB per WebSocket connection (see docs/INTERNALS.md)",
        check=_check_translate_request,
    ),
]
