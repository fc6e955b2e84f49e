"""Canaries: the private python-engineio / python-socketio / aiohttp names the gateway relies on.

transport.py, inbound.py and app.py's GatewayServer override or read these. Were a
library upgrade to rename or reshape one, the gateway could silently lose a guard
(binary refusal, the connect deadline, the session cap) or a protocol fix; these
tests fail first, naming the touchpoint to revisit.
"""

from __future__ import annotations

import inspect

import engineio
import pytest
import socketio
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from engineio.async_socket import AsyncSocket
from engineio.base_socket import BaseSocket

from services.realtime_service.inbound import GatewayPacket, RefusedPacket


def touchpoint(owner: object, name: str) -> object:
    assert hasattr(owner, name), f"library touchpoint changed: {getattr(owner, '__name__', owner)}.{name} is gone"
    return getattr(owner, name)


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("receive", ["self", "pkt"]),
        ("close", ["self", "wait", "abort", "reason"]),
        ("handle_post_request", ["self", "environ"]),
        ("handle_get_request", ["self", "environ"]),
        ("poll", ["self"]),
    ],
)
def test_engineio_socket_methods_the_fast_socket_overrides(name: str, expected: list[str]) -> None:
    method = touchpoint(AsyncSocket, name)
    assert parameters(method) == expected, f"library touchpoint changed: engineio AsyncSocket.{name} signature"


def test_engineio_socket_state_flags() -> None:
    source = inspect.getsource(BaseSocket.__init__)
    for flag in ("self.upgraded", "self.closing", "self.closed", "self.connected", "self.last_ping"):
        assert flag in source, f"library touchpoint changed: engineio BaseSocket {flag}"


def test_engineio_server_internals() -> None:
    server = engineio.AsyncServer(async_mode="aiohttp")
    table = touchpoint(server, "_async")
    assert {"websocket", "translate_request"} <= set(table), "library touchpoint changed: engineio AsyncServer._async"
    assert isinstance(touchpoint(server, "sockets"), dict), "library touchpoint changed: engineio AsyncServer.sockets"
    receive = inspect.getsource(AsyncSocket.receive)
    assert "UnknownPacketError" in receive, "library touchpoint changed: engineio AsyncSocket.receive packet types"
    handle = inspect.getsource(engineio.AsyncServer.handle_request)
    assert "handle_post_request" in handle, "library touchpoint changed: engineio AsyncServer.handle_request POST"


@pytest.mark.parametrize("name", ["_handle_eio_message", "_handle_eio_connect", "_handle_connect", "_send_packet"])
def test_socketio_server_methods_the_gateway_server_overrides(name: str) -> None:
    touchpoint(socketio.AsyncServer, name)


def test_socketio_decodes_client_packets_with_the_configured_packet_class() -> None:
    server = socketio.AsyncServer(async_mode="aiohttp", serializer=GatewayPacket)
    assert server.packet_class is GatewayPacket, "library touchpoint changed: socketio serializer= packet class"
    source = inspect.getsource(socketio.AsyncServer._handle_eio_message)
    assert "self.packet_class(encoded_packet=data)" in source, (
        "library touchpoint changed: socketio AsyncServer._handle_eio_message decoding"
    )
    for name in ("handlers", "namespace_handlers", "namespaces", "manager"):
        touchpoint(server, name)
    touchpoint(server.manager, "sid_from_eio_sid")


def test_socketio_packet_decode_still_reports_attachments() -> None:
    with pytest.raises(RefusedPacket) as refused:
        GatewayPacket(encoded_packet='51-["x",{"_placeholder":true,"num":0}]')
    assert refused.value.reason == "binary", "library touchpoint changed: socketio Packet.decode attachment count"


def test_aiohttp_websocket_writer_internals() -> None:
    touchpoint(web.WebSocketResponse(), "_writer")
    for name in ("_paused", "_drain_helper"):
        assert name in inspect.getsource(BaseProtocol), f"library touchpoint changed: aiohttp BaseProtocol.{name}"
