"""aiohttp internals the gateway relies on (see seams/__init__.py).

Everything else the transport needs from aiohttp goes through its public API: a
WebSocket's connection is `Request.transport` (written to directly, frames built once
per broadcast), back-pressure is the transport's write buffer against its high-water
mark, and waiting for room is `Request.writer.drain()`.
"""

from __future__ import annotations

import inspect
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from services.realtime_service.seams import Touchpoint, TouchpointChanged

HTTP_PARSER = "aiohttp: RequestHandler._parser / _payload_parser"


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
        raise TouchpointChanged(HTTP_PARSER, "BaseProtocol no longer keeps the HTTP parser as _parser")
    if "self._payload_parser = parser" not in inspect.getsource(RequestHandler.set_parser):
        raise TouchpointChanged(HTTP_PARSER, "RequestHandler.set_parser no longer sets _payload_parser")
    if "self._payload_parser is None" not in inspect.getsource(RequestHandler.data_received):
        raise TouchpointChanged(HTTP_PARSER, "data_received no longer skips the HTTP parser once a WebSocket reads")
    request = make_mocked_request("GET", "/")
    if not hasattr(request, "protocol"):
        raise TouchpointChanged(HTTP_PARSER, "Request.protocol is gone")


TOUCHPOINTS = [
    Touchpoint(
        name=HTTP_PARSER,
        used_in="seams.aiohttp.release_http_parser (from transport.FastSocket.handle_get_request)",
        why="aiohttp keeps an upgraded connection's HTTP parser until it closes; nothing reads it again",
        saves="memory per idle WebSocket connection (see docs/INTERNALS.md for the figure)",
        check=_check_http_parser,
    ),
]
