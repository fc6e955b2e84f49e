"""aiohttp internals the gateway relies on (see seams/__init__.py).

Everything else the transport needs from aiohttp goes through its public API: a
WebSocket's connection is `Request.transport` (written to directly, frames built once
per broadcast), back-pressure is the transport's write buffer against its high-water
mark, and waiting for room is `Request.writer.drain()`.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from functools import partial
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from services.realtime_service.seams import Touchpoint, TouchpointChanged

HTTP_PARSER = "aiohttp: RequestHandler._parser / _payload_parser"
WRITER_STATE = (
    "aiohttp: WebSocketResponse._writer and WebSocketWriter._send_lock / _background_tasks"
    " / get_random_bits"
)
_WRITER_STATE_NAMES = ("_send_lock", "_background_tasks", "get_random_bits")


class IdleWriterState:
    """One server's instances of what aiohttp's WebSocket writer keeps for compression and masking.

    Every aiohttp `WebSocketWriter` allocates a lock and a task set for
    permessage-deflate and a random-bits source for masking client frames: about 600
    bytes per connection that a server which neither compresses nor masks never uses.
    Each of a server's writers gets these instead; were they ever used, sharing would
    only serialize compression across that server's connections (the set just keeps
    tasks referenced).
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {
            "_send_lock": asyncio.Lock(),
            "_background_tasks": set(),
            "get_random_bits": partial(random.getrandbits, 32),
        }


def share_idle_writer_state(response: web.WebSocketResponse, state: IdleWriterState) -> None:
    """Give a prepared, compression-free WebSocket's writer the server's shared idle state."""
    writer = getattr(response, "_writer", None)
    if writer is None or writer.compress or writer.use_mask:
        return
    for name, shared in state.values.items():
        if hasattr(writer, name):
            setattr(writer, name, shared)


def _check_writer_state() -> None:
    from aiohttp._websocket.writer import WebSocketWriter

    if "self._writer" not in inspect.getsource(web.WebSocketResponse._pre_start):
        raise TouchpointChanged(
            WRITER_STATE, "WebSocketResponse no longer keeps its writer as _writer"
        )
    init = inspect.getsource(WebSocketWriter.__init__)
    for name in _WRITER_STATE_NAMES:
        if f"self.{name}" not in init:
            raise TouchpointChanged(WRITER_STATE, f"WebSocketWriter no longer has {name}")
    for name in ("compress", "use_mask"):
        if f"self.{name}" not in init:
            raise TouchpointChanged(WRITER_STATE, f"WebSocketWriter no longer has {name}")


def release_http_parser(request: web.Request) -> None:
    """Let go of the connection's HTTP parser once the WebSocket reader has taken over.

    After an accepted upgrade aiohttp feeds every byte to the WebSocket reader, but it
    keeps the HTTP request parser (about 3 KB with what it holds) referenced until the
    connection closes, for a declined upgrade's sake. A gateway's connections are
    almost all WebSockets, and this was the largest piece of an idle one. Only done
    once aiohttp has handed the connection to a WebSocket reader (`_payload_parser`
    set), so a declined upgrade keeps its parser.
    """
    protocol: Any = request.protocol
    if getattr(protocol, "_payload_parser", None) is not None and hasattr(protocol, "_parser"):
        protocol._parser = None


def _check_http_parser() -> None:
    from aiohttp.base_protocol import BaseProtocol
    from aiohttp.web_protocol import RequestHandler

    if "self._parser = parser" not in inspect.getsource(BaseProtocol.__init__):
        raise TouchpointChanged(
            HTTP_PARSER, "BaseProtocol no longer keeps the HTTP parser as _parser"
        )
    if "self._payload_parser = parser" not in inspect.getsource(RequestHandler.set_parser):
        raise TouchpointChanged(
            HTTP_PARSER, "RequestHandler.set_parser no longer sets _payload_parser"
        )
    if "self._payload_parser is None" not in inspect.getsource(RequestHandler.data_received):
        raise TouchpointChanged(
            HTTP_PARSER, "data_received no longer skips the HTTP parser once a WebSocket reads"
        )
    request = make_mocked_request("GET", "/")
    if not hasattr(request, "protocol"):
        raise TouchpointChanged(HTTP_PARSER, "Request.protocol is gone")


TOUCHPOINTS = [
    Touchpoint(
        name=WRITER_STATE,
        used_in=(
            "seams.aiohttp.share_idle_writer_state (from transport.FastSocket.handle_get_request)"
        ),
        why=(
            "a compression-free server writer never uses its compression lock, task set or "
            "masking source"
        ),
        saves="memory per WebSocket connection (see docs/INTERNALS.md for the figure)",
        check=_check_writer_state,
    ),
    Touchpoint(
        name=HTTP_PARSER,
        used_in="seams.aiohttp.release_http_parser (from transport.FastSocket.handle_get_request)",
        why=(
            "aiohttp keeps an upgraded connection's HTTP parser until it closes; nothing reads "
            "it again"
        ),
        saves="memory per idle WebSocket connection (see docs/INTERNALS.md for the figure)",
        check=_check_http_parser,
    ),
]
