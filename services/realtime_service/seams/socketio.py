"""python-socketio internals the gateway relies on (see seams/__init__.py).

Public hooks used instead of internals: the `serializer=` packet class (inbound.py's
`GatewayPacket`), `client_manager=` with the manager's public methods
(`initialize`, `basic_enter_room`, `get_participants`, `get_rooms`,
`sid_from_eio_sid`), `get_environ()`, the connect handler's own environ, and
`redis_options=` (redis-py's connection callback counts re-subscriptions).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager
from socketio.base_manager import BaseManager
from socketio.base_server import BaseServer

from services.realtime_service.seams import Touchpoint, TouchpointChanged

ENGINEIO_CLASS = "socketio: AsyncServer._engineio_server_class"
EIO_MESSAGE = "socketio: AsyncServer._handle_eio_message"
HANDLE_EMIT = "socketio: AsyncPubSubManager._handle_emit"
ROOMS_LAYOUT = "socketio: BaseManager.rooms layout (namespace -> room -> bidict sid -> eio_sid)"
PUBSUB_MESSAGE = (
    "socketio: AsyncPubSubManager's emit message on the channel"
    " (services/shared/redis_contract.emit_packet)"
)


def _source(function: Any) -> str:
    return inspect.getsource(function)


def _check_engineio_class() -> None:
    init = _source(BaseServer.__init__)
    if "self._engineio_server_class()(" not in init:
        raise TouchpointChanged(
            ENGINEIO_CLASS, "the Engine.IO server is no longer made by _engineio_server_class()"
        )
    for event in ("connect", "message", "disconnect"):
        if f"self.eio.on('{event}'" not in init:
            raise TouchpointChanged(
                ENGINEIO_CLASS,
                f"python-socketio no longer registers its {event} handler with eio.on()",
            )


def _check_eio_message() -> None:
    method = getattr(socketio.AsyncServer, "_handle_eio_message", None)
    if method is None or list(inspect.signature(method).parameters) != ["self", "eio_sid", "data"]:
        raise TouchpointChanged(EIO_MESSAGE, "the method or its signature changed")
    source = _source(method)
    if "self.packet_class(encoded_packet=data)" not in source or "_handle_connect" not in source:
        raise TouchpointChanged(
            EIO_MESSAGE, "it no longer decodes with the packet class and dispatches CONNECT"
        )
    server = socketio.AsyncServer(async_mode="aiohttp")
    if not callable(getattr(server.manager, "sid_from_eio_sid", None)):
        raise TouchpointChanged(EIO_MESSAGE, "manager.sid_from_eio_sid is gone")


def _check_handle_emit() -> None:
    method = getattr(AsyncPubSubManager, "_handle_emit", None)
    if method is None or list(inspect.signature(method).parameters) != ["self", "message"]:
        raise TouchpointChanged(HANDLE_EMIT, "the method or its signature changed")
    if "await self._handle_emit(data)" not in _source(AsyncPubSubManager._thread):
        raise TouchpointChanged(HANDLE_EMIT, "channel messages no longer reach _handle_emit")
    connect = _source(socketio.AsyncRedisManager._redis_connect)
    if "self.redis = " not in connect or "self.pubsub = " not in connect:
        raise TouchpointChanged(
            HANDLE_EMIT,
            "the manager no longer keeps its connections as redis / pubsub "
            "(OrderedRedisManager.close closes them)",
        )


def _check_rooms_layout() -> None:
    manager = BaseManager()
    manager.basic_enter_room("s1", "/", None, eio_sid="e1")
    rooms = getattr(manager, "rooms", None)
    members = rooms.get("/", {}).get(None) if isinstance(rooms, dict) else None
    if (
        members is None
        or list(members.items()) != [("s1", "e1")]
        or manager.sid_from_eio_sid("e1", "/") != "s1"
    ):
        raise TouchpointChanged(
            ROOMS_LAYOUT, "namespace members are no longer rooms[namespace][None] = {sid: eio_sid}"
        )
    if not callable(getattr(manager, "basic_enter_room", None)):
        raise TouchpointChanged(ROOMS_LAYOUT, "basic_enter_room is gone")


def _check_pubsub_message() -> None:
    import orjson

    from services.shared.redis_contract import emit_packet

    published: list[dict[str, Any]] = []

    async def capture(message: dict[str, Any]) -> None:
        published.append(message)

    async def nothing(_message: dict[str, Any]) -> None:
        return None

    manager = AsyncPubSubManager(channel="canary")
    manager._publish = capture
    manager._handle_emit = nothing
    wire = {"_id": "1", "text": "hi"}
    asyncio.run(manager.emit("getAllmessages", wire, namespace="/"))
    ours = orjson.loads(emit_packet(wire, 1, 0))
    if len(published) != 1:
        raise TouchpointChanged(PUBSUB_MESSAGE, "emit no longer publishes one message")
    theirs = published[0]
    missing = set(theirs) - set(ours)
    if missing:
        raise TouchpointChanged(
            PUBSUB_MESSAGE, f"the manager's message has new fields {sorted(missing)}"
        )
    for key in ("method", "event", "data", "namespace", "room", "skip_sid", "callback"):
        if theirs.get(key) != ours.get(key):
            raise TouchpointChanged(
                PUBSUB_MESSAGE,
                f"field {key!r} is {theirs.get(key)!r}, the relay writes {ours.get(key)!r}",
            )


TOUCHPOINTS = [
    Touchpoint(
        name=ENGINEIO_CLASS,
        used_in="app.GatewayServer._engineio_server_class",
        why=(
            "the only way to give python-socketio the gateway's Engine.IO server"
            " (transport.FastEngineIOServer)"
        ),
        saves="everything transport.py saves",
        check=_check_engineio_class,
    ),
    Touchpoint(
        name=EIO_MESSAGE,
        used_in="app.GatewayServer._handle_eio_message",
        why=(
            "a packet GatewayPacket refuses closes the client's session; an unknown namespace"
            " gets the Socket.IO specification's CONNECT_ERROR; a connected session loses its"
            " connect deadline and the bulk of its environ"
        ),
        saves=(
            "the inbound guard (tests/integration/test_gateway_guard.py), protocol conformance"
            " (test_protocol.py), environ memory per connection"
        ),
        check=_check_eio_message,
    ),
    Touchpoint(
        name=HANDLE_EMIT,
        used_in="delivery.OrderedRedisManager._handle_emit",
        why="where relay messages arrive: duplicates dropped, gaps filled from the history stream, "
        "one encode and one frame per broadcast instead of a task per recipient",
        saves="ordered, gap-free delivery; the broadcast path (see docs/INTERNALS.md)",
        check=_check_handle_emit,
    ),
    Touchpoint(
        name=ROOMS_LAYOUT,
        used_in="rooms.ImpliedSidRooms, delivery.OrderedRedisManager._broadcast",
        why=(
            "a client's own room is answered from the namespace's member list"
            " instead of a bidict per client"
        ),
        saves="about 600 bytes per connection (see docs/INTERNALS.md)",
        check=_check_rooms_layout,
    ),
    Touchpoint(
        name=PUBSUB_MESSAGE,
        used_in="services.shared.redis_contract.emit_packet (written by the relay's Lua script)",
        why="the relay publishes the packet and appends the history entry in one Lua script, "
        "so it writes the manager's message itself rather than through python-socketio",
        saves="atomic publish + history (no message on the channel without its history entry)",
        check=_check_pubsub_message,
    ),
]
