"""Engine.IO transport pieces replaced for fan-out speed, behind python-engineio's interfaces.

Profiling a gateway under 1,000 clients × 50 msg/s showed most of its time in the
per-client WebSocket writer: a task and a timer created by `asyncio.wait_for` each time
a writer wakes up, aiohttp re-encoding and re-framing the same text for every client,
and permessage-deflate compressing each frame once per client (aiohttp accepts the
browser's offer by default). These classes keep the protocol and the public API of
python-socketio/python-engineio and change only that:

* `FastSocket.poll` waits with `asyncio.timeout` (no extra task per wake-up);
* `FastWebSocket` refuses compression and writes each text message as a WebSocket
  frame built once per broadcast and shared by every recipient, with the same
  flow control as aiohttp's own writer;
* `FastSocket.poll` also caps a long-polling response at the number of packets
  python-engineio's client accepts in one payload (16): a burst would otherwise
  make Python clients drop the connection;
* `FastSocket.write_now` lets a broadcast write that frame straight to an idle
  WebSocket client's transport, with no queue, task or wake-up per recipient; frames
  written in one loop iteration go out in one write per client. Only
  when nothing is queued or being written for that client, so order is kept; any
  other client (long-polling, busy, or whose kernel buffer is full) is queued as
  usual, which is also how a slow consumer's backlog becomes visible.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import engineio
from aiohttp.web import WebSocketResponse
from engineio import exceptions
from engineio.async_drivers import aiohttp as aiohttp_driver
from engineio.async_socket import AsyncSocket
from engineio.payload import Payload

_TEXT_FIN = 0x81  # FIN bit + text opcode
_FRAME_CACHE_SIZE = 256
_frames: dict[str, bytes] = {}


def text_frame(text: str) -> bytes:
    """The unmasked server-to-client WebSocket frame carrying `text`.

    A broadcast hands every recipient the same encoded string, so the frame is built
    once and found again by the (cached) hash of that string.
    """
    frame = _frames.get(text)
    if frame is None:
        payload = text.encode()
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", _TEXT_FIN, size)
        elif size < 65536:
            header = struct.pack("!BBH", _TEXT_FIN, 126, size)
        else:
            header = struct.pack("!BBQ", _TEXT_FIN, 127, size)
        frame = header + payload
        if len(_frames) >= _FRAME_CACHE_SIZE:
            del _frames[next(iter(_frames))]
        _frames[text] = frame
    return frame


class FastWebSocket(aiohttp_driver.WebSocket):  # type: ignore[misc]
    """python-engineio's aiohttp WebSocket wrapper, without compression or re-framing."""

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await self._sock.prepare(request)
        self.environ = environ
        session = getattr(self.handler, "__self__", None)  # the Engine.IO session served
        if isinstance(session, FastSocket):
            session.websocket = self
        try:
            await self.handler(self)
        finally:
            if isinstance(session, FastSocket):
                session.websocket = None
        return self._sock

    _corked: list[bytes] | None = None

    def write_now(self, frame: bytes) -> bool:
        """Write a ready frame (at the end of this loop iteration) unless closing or pushing back."""
        writer = self._sock._writer if self._sock is not None else None
        if writer is None or writer.transport is None or writer.transport.is_closing():
            return False
        if writer.protocol._paused:
            return False
        if self._corked is None:
            self._corked = [frame]
            _uncork_soon(self)
        else:
            self._corked.append(frame)
        return True

    def uncork(self) -> None:
        """Write every frame collected in this loop iteration with one call."""
        frames, self._corked = self._corked, None
        writer = self._sock._writer if self._sock is not None else None
        if not frames or writer is None or writer.transport is None or writer.transport.is_closing():
            return
        writer.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    async def send(self, message: str | bytes) -> None:
        self.uncork()  # what broadcasts wrote directly goes first
        if not isinstance(message, str):
            await super().send(message)
            return
        writer = self._sock._writer
        if writer is None or writer.transport is None or writer.transport.is_closing():
            raise ConnectionResetError("WebSocket is closed")
        writer.transport.write(text_frame(message))
        protocol = writer.protocol
        if protocol._paused:  # the kernel buffer is full: wait, so the queue backs up
            await protocol._drain_helper()


_to_uncork: list[FastWebSocket] = []


def _uncork_soon(websocket: FastWebSocket) -> None:
    """Flush `websocket` once the current loop iteration is done.

    Broadcasts handled in one iteration (a burst read from Redis in one go) then reach
    each client in one write instead of one system call per message.
    """
    if not _to_uncork:
        asyncio.get_running_loop().call_soon(_uncork_all)
    _to_uncork.append(websocket)


def _uncork_all() -> None:
    websockets = _to_uncork[:]
    _to_uncork.clear()
    for websocket in websockets:
        websocket.uncork()


class FastSocket(AsyncSocket):  # type: ignore[misc]
    """An Engine.IO session that can be written to directly while its writer is idle."""

    websocket: FastWebSocket | None = None
    _writer_idle = False

    def write_now(self, frame: bytes) -> bool:
        """Write `frame` now if that cannot overtake anything; False means "queue it"."""
        if not (self._writer_idle and self.upgraded and self.websocket is not None):
            return False
        if self.closed or self.closing or not self.queue.empty():
            return False
        return self.websocket.write_now(frame)

    async def poll(self) -> list[Any]:
        timeout = self.server.ping_interval + self.server.ping_timeout
        self._writer_idle = True
        try:
            async with asyncio.timeout(timeout):
                packets = [await self.queue.get()]
        except (TimeoutError, asyncio.CancelledError):
            # As upstream: a cancelled or timed-out wait ends the session's transport.
            raise exceptions.QueueEmpty() from None
        finally:
            self._writer_idle = False
        self.queue.task_done()
        if packets == [None]:
            return []
        # One long-polling response carries at most what python-engineio's own client
        # accepts in a payload (it drops the connection beyond that); the rest waits
        # for the next poll. A WebSocket writer sends each packet as a frame: no limit.
        limit = None if self.upgraded else Payload.max_decode_packets
        while limit is None or len(packets) < limit:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets


class FastEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server using `FastWebSocket` for the WebSocket transport."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A copy: the driver's table is module-level and shared by every server.
        self._async: dict[str, Any] = {**self._async, "websocket": FastWebSocket}


def adopt(socket: AsyncSocket) -> None:
    """Make a freshly created Engine.IO session a `FastSocket`.

    python-engineio creates sessions with a hard-coded class; `FastSocket` only
    overrides a method, so switching the class of the new object is safe.
    """
    if type(socket) is AsyncSocket:
        socket.__class__ = FastSocket
