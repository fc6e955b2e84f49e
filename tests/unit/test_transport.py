"""The gateway's transport pieces match what they replace, and belong to one server.

What they replace is aiohttp's frames and writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import struct
import weakref
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp._websocket.models import WSMsgType
from aiohttp._websocket.writer import WebSocketWriter
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from engineio.async_drivers import aiohttp as aiohttp_driver
from multidict import CIMultiDict

from services.realtime_service import transport
from services.realtime_service.seams.aiohttp import (
    IdleWriterState,
    release_http_parser,
    share_idle_writer_state,
)
from services.realtime_service.seams.engineio import translate_request
from services.realtime_service.transport import FrameCache


class RecordingTransport:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False


def aiohttp_frame(text: str) -> bytes:
    transport = RecordingTransport()
    writer = WebSocketWriter(protocol=Any, transport=transport)  # type: ignore[arg-type]
    writer._write_websocket_frame(text.encode(), WSMsgType.TEXT, 0)
    return bytes(transport.written)


@pytest.mark.parametrize(
    "text",
    [
        "3",
        '42["getAllmessages",{"_id":"1","text":"hé 🙂"}]',
        "x" * 125,
        "x" * 126,
        "é" * 40_000,
        "y" * 70_000,
    ],
)
def test_frames_match_aiohttp_for_every_length_class(text: str) -> None:
    assert FrameCache().text_frame(text) == aiohttp_frame(text)


def test_the_same_text_reuses_one_frame() -> None:
    frames = FrameCache()
    text = '42["getAllmessages",{"_id":"7"}]'
    assert frames.text_frame(text) is frames.text_frame(text)


def test_environ_matches_python_engineio_except_raw_uri_as_received() -> None:
    request = make_mocked_request(
        "GET",
        "/socket.io/?EIO=4&transport=websocket&token=a.b_c%2Bd",
        headers=CIMultiDict(
            [
                ("Host", "chat.example:8080"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("X-Forwarded-Proto", "https"),
                ("Content-Type", "text/plain"),
                ("Content-Length", "0"),
                ("X-Many", "1"),
                ("X-Many", "2"),
            ]
        ),
    )
    ours = translate_request(request)
    theirs = aiohttp_driver.translate_request(request)
    assert ours.pop("RAW_URI") == request.raw_path
    theirs.pop("RAW_URI")
    assert ours == theirs
    assert ours["HTTP_X_MANY"] == "1,2" and ours["wsgi.url_scheme"] == "https"


def test_the_frame_cache_keeps_the_newest_texts_only() -> None:
    frames = FrameCache(size=2)
    first = frames.text_frame("a")
    frames.text_frame("b")
    frames.text_frame("c")
    assert len(frames) == 2
    assert frames.text_frame("a") is not first  # built anew: "a" was the oldest


class Refusing:
    """Stands in for writer state that must not be used; any use raises."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"used {name}")

    def __call__(self, *args: Any) -> Any:
        raise AssertionError("called")


async def test_an_uncompressed_server_writer_never_uses_the_state_it_shares() -> None:
    """aiohttp's lock, task set and random bits serve compression and masking only."""
    transport = RecordingTransport()
    writer = WebSocketWriter(protocol=Any, transport=transport)  # type: ignore[arg-type]
    for name in ("_send_lock", "_background_tasks", "get_random_bits"):
        assert hasattr(writer, name), name  # still aiohttp's attribute names
        setattr(writer, name, Refusing())
    await writer.send_frame(b"x" * 70_000, WSMsgType.TEXT)
    await writer.send_frame(b"p", WSMsgType.PING)
    await writer.close(1000, b"bye")
    assert transport.written.startswith(bytes([0x81, 127]))


class PreparedWebSocket:
    """A WebSocketResponse's one field `share_idle_writer_state` reads."""

    def __init__(self, writer: WebSocketWriter) -> None:
        self._writer = writer


def test_writers_share_their_idle_state_unless_they_compress() -> None:
    plain = WebSocketWriter(protocol=Any, transport=RecordingTransport())  # type: ignore[arg-type]
    other = WebSocketWriter(protocol=Any, transport=RecordingTransport())  # type: ignore[arg-type]
    compressing = WebSocketWriter(protocol=Any, transport=RecordingTransport(), compress=15)  # type: ignore[arg-type]
    lock = compressing._send_lock
    state = IdleWriterState()
    for writer in (plain, other, compressing):
        share_idle_writer_state(PreparedWebSocket(writer), state)  # type: ignore[arg-type]
    assert (
        plain._send_lock is other._send_lock and plain._background_tasks is other._background_tasks
    )
    assert plain._send_lock is state.values["_send_lock"]
    assert compressing._send_lock is lock
    elsewhere = WebSocketWriter(protocol=Any, transport=RecordingTransport())  # type: ignore[arg-type]
    share_idle_writer_state(PreparedWebSocket(elsewhere), IdleWriterState())  # type: ignore[arg-type]
    assert (
        elsewhere._send_lock is not plain._send_lock
    )  # another server's writers share nothing with these


async def test_a_websocket_works_to_the_end_without_its_http_parser() -> None:
    """aiohttp reads an upgraded connection through the WebSocket reader only."""
    parsers: list[object] = []

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        parsers.append(request.protocol._parser)  # still aiohttp's attribute name
        release_http_parser(request)
        parsers.append(request.protocol._parser)
        async for message in ws:
            await ws.send_str(message.data.upper())
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    async with TestClient(TestServer(app)) as client:
        ws = await client.ws_connect("/ws")
        for text in ("hello", "x" * 70_000):
            await ws.send_str(text)
            assert await ws.receive_str(timeout=5) == text.upper()
        await ws.close()
        assert ws.close_code == 1000
    assert parsers[0] is not None and parsers[1] is None


async def test_a_declined_upgrade_keeps_the_http_parser() -> None:
    """Without a WebSocket reader the parser still has work: the connection speaks HTTP."""
    kept: list[object] = []

    async def plain(request: web.Request) -> web.Response:
        release_http_parser(request)
        kept.append(request.protocol._parser)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", plain)
    async with TestClient(TestServer(app)) as client:
        for _ in range(2):  # keep-alive: the second request needs the parser
            async with client.get(
                "/", headers={"Upgrade": "websocket", "Connection": "Upgrade"}
            ) as response:
                assert response.status == 200
    assert kept[0] is not None


async def test_closed_sessions_no_request_will_end_are_forgotten_without_engineio_monitor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The heartbeat keeps ping deadlines, so python-engineio's per-session monitor is off;
    what it also did, dropping closed sessions, is done by one sweep."""
    monkeypatch.setattr(transport, "FORGET_CLOSED_SECONDS", 0.01)
    server = transport.FastEngineIOServer(async_mode="aiohttp")
    assert server.start_service_task is False
    server.sockets.update(
        {
            "closed": SimpleNamespace(closed=True, _poll_waiting=False),
            "answering-its-poll": SimpleNamespace(closed=True, _poll_waiting=True),
            "open": SimpleNamespace(closed=False, _poll_waiting=False),
        }
    )
    server.tasks.spawn(server._forget_closed_sessions())
    try:
        async with asyncio.timeout(5):
            while "closed" in server.sockets:
                await asyncio.sleep(0.01)  # wait-ok: polling the sweep, with a deadline
        assert set(server.sockets) == {"answering-its-poll", "open"}
    finally:
        await server.tasks.cancel_all()


async def test_a_connection_the_client_drops_is_freed_without_the_cyclic_collector() -> None:
    """The response's last error holds frames that hold the response; the close lets go.

    A client that resets its connection makes `receive()` end and the CLOSE frame fail;
    aiohttp keeps that error, and its traceback made the whole connection a reference
    cycle, each one left for the cyclic collector (80-95 ms passes under churn).
    """
    closed = asyncio.Event()
    responses: list[weakref.ref[web.WebSocketResponse]] = []

    async def gateway_like(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        websocket = transport.DirectWebSocket(request, ws, transport.Uncorker())
        responses.append(weakref.ref(ws))
        await ws.send_str("ready")
        try:  # as the gateway's reading loop: aiohttp cancels it when the client is gone
            with contextlib.suppress(OSError):
                while True:
                    await websocket.receive_data()
        finally:
            await websocket.close()
            closed.set()
        return ws

    app = web.Application()
    app.router.add_get("/ws", gateway_like)
    gc.disable()
    try:
        async with TestServer(app) as server:
            await drop_after_handshake(server.host, server.port)
            await asyncio.wait_for(closed.wait(), 5)
            deadline = asyncio.get_running_loop().time() + 5
            while responses[0]() is not None:
                assert asyncio.get_running_loop().time() < deadline, "kept alive by a cycle"
                # No event says aiohttp let go of the request: poll, with a deadline.
                await asyncio.sleep(0.01)  # wait-ok: polling, with a deadline
    finally:
        gc.enable()


async def drop_after_handshake(host: str, port: int) -> None:
    """Upgrade to a WebSocket, read the first frame, then reset the TCP connection."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    assert await reader.readexactly(7) == b"\x81\x05ready"
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
