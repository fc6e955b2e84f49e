"""Engine.IO transport pieces replaced for fan-out speed and memory.

They sit behind python-engineio's interfaces.

Profiling a gateway under 1,000 clients × 50 msg/s showed most of its time in the
per-client WebSocket writer: a task and a timer created by `asyncio.wait_for` each time
a writer wakes up, aiohttp re-encoding and re-framing the same text for every client,
and permessage-deflate compressing each frame once per client (aiohttp accepts the
browser's offer by default). Measuring memory showed the same per-client machinery
again: four tasks per idle connection (the request handler's reader, a task per read,
the writer and the ping timer), an `asyncio.Queue` and the handshake's stack frames.
These classes keep the protocol and the public API of python-socketio/python-engineio
and change only that:

* `FastSocket.handle_get_request` accepts a WebSocket refusing compression;
  `DirectWebSocket` writes each text message as a WebSocket frame built once per
  broadcast and shared by every recipient; frames written in one loop iteration go
  out in one write per client;
* a WebSocket session has no writer task: each packet put on its queue is written at
  once while the connection takes data; when the kernel buffer is full, one short-lived
  task waits for it to drain and the queue backs up meanwhile, which is also how a slow
  consumer's backlog becomes visible;
* its queue is a `PacketQueue` (asyncio.Queue's interface, storage only while
  non-empty), its pings come from the server's shared `Heartbeat` (no ping task), and
  it reads without a task or timer per read;
* `FastEngineIOServer.handle_request` serves a WebSocket after the handshake has
  returned, so the handshake's frames, and the request environ they hold, are freed,
  and reads in its own frame: nothing else stays on the stack of an idle connection;
* `FastSocket.write_now` lets a broadcast write its frame straight to an idle WebSocket
  client, with no queue at all. Only when nothing is queued for that client, so order
  is kept; any other client (long-polling, busy, or whose kernel buffer is full) is
  queued as usual;
* once a WebSocket is up, aiohttp's HTTP parser for the connection is released (only
  the WebSocket reader reads it from then on);
* a slow consumer's connection is reset (`DirectWebSocket.abort`), not closed: a FIN or
  CLOSE frame would wait behind the bytes it is not reading;
* `FastSocket.poll` (long-polling) waits with `asyncio.timeout` (no extra task per
  wake-up) and caps a response at the number of packets python-engineio's client
  accepts in one payload (16): a burst would otherwise make Python clients drop the
  connection.

The same classes guard what clients send (see inbound.py for why): every inbound
packet, on WebSocket and long-polling alike, passes `FastSocket.receive`, which spends
a token of the connection's budget and refuses binary and unknown packets; a refused
client's session is closed (`FastSocket.refuse`). `FastEngineIOServer` caps sessions
per client address, closes sessions that never connect to a namespace (through the
heartbeat's timer), and answers what python-engineio answers against the Engine.IO v4
specification as the specification says (see docs/PROTOCOL.md).

What a server uses (frame cache, background tasks, write batching, aiohttp writer
state) belongs to that server: two gateways in one process share nothing, and a
server's tasks are cancelled and awaited when it shuts down.

The private python-engineio and aiohttp names this module relies on are listed, with
why and what they save, in seams/engineio.py and seams/aiohttp.py (and
docs/INTERNALS.md); tests/unit/test_library_touchpoints.py fails naming the one that
changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import engineio
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_websocket import WSCloseCode
from aiohttp.typedefs import Middleware
from aiohttp.web import WebSocketResponse
from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket
from engineio.payload import Payload

from services.realtime_service import inbound
from services.realtime_service.heartbeat import Heartbeat
from services.realtime_service.metrics import LONG_POLLS_WAITING, SESSIONS_REFUSED
from services.realtime_service.packet_queue import PacketQueue, discard_queued
from services.realtime_service.seams.aiohttp import (
    IdleWriterState,
    release_http_parser,
    share_idle_writer_state,
)
from services.realtime_service.seams.engineio import (
    MAX_PACKETS_PER_POLL,
    adopt_session,
    use_raw_uri_environ,
)
from services.shared.addresses import IpNetwork, client_address, forwarded_for_values
from services.shared.tasks import cancel_and_wait

_TEXT_FIN = 0x81  # FIN bit + text opcode
_BINARY_FIN = 0x82  # FIN bit + binary opcode
_FRAME_CACHE_SIZE = 256
# How often closed sessions that no request will end are dropped (see FastEngineIOServer).
FORGET_CLOSED_SECONDS = 5.0
# Frames held for one connection within a loop iteration before they are written anyway.
CORK_LIMIT_BYTES = 64 * 1024
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def websocket_frame(first_byte: int, payload: bytes) -> bytes:
    """An unmasked server-to-client WebSocket frame (`first_byte`: FIN bit and opcode)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first_byte, size)
    elif size < 65536:
        header = struct.pack("!BBH", first_byte, 126, size)
    else:
        header = struct.pack("!BBQ", first_byte, 127, size)
    return header + payload


class FrameCache:
    """The WebSocket frames of the last texts sent, one per text.

    A broadcast hands every recipient the same encoded string, so the frame is built
    once and found again by the (cached) hash of that string. One cache per server.
    """

    __slots__ = ("_frames", "_size")

    def __init__(self, size: int = _FRAME_CACHE_SIZE) -> None:
        self._frames: dict[str, bytes] = {}
        self._size = size

    def __len__(self) -> int:
        return len(self._frames)

    def __contains__(self, text: object) -> bool:
        return text in self._frames

    def text_frame(self, text: str) -> bytes:
        """The WebSocket frame carrying `text`."""
        frames = self._frames
        frame = frames.get(text)
        if frame is None:
            frame = websocket_frame(_TEXT_FIN, text.encode())
            if len(frames) >= self._size:
                del frames[next(iter(frames))]
            frames[text] = frame
        return frame

    def packet_frame(self, pkt: packet.Packet) -> bytes:
        """The WebSocket frame carrying one Engine.IO packet (text, or binary attachments)."""
        encoded = pkt.encode()
        if isinstance(encoded, str):
            return self.text_frame(encoded)
        return websocket_frame(_BINARY_FIN, encoded)


class BackgroundTasks:
    """Tasks a server starts and owns: kept referenced until done.

    At shutdown they are cancelled and awaited.
    """

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` as a task of this server."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait until each has ended."""
        while self._tasks:
            await asyncio.gather(*(cancel_and_wait(task) for task in list(self._tasks)))


class Uncorker:
    """Frames written in one loop iteration go out in one write per connection.

    Broadcasts handled in one iteration (a burst read from Redis in one go) then reach
    each client in one write instead of one system call per message. One per server.
    """

    __slots__ = ("_event_loop", "_pending")

    def __init__(self) -> None:
        self._pending: list[DirectWebSocket] = []
        self._event_loop: asyncio.AbstractEventLoop | None = None

    def soon(self, websocket: DirectWebSocket) -> None:
        """Flush `websocket` once the current loop iteration is done."""
        if not self._pending:
            self._running_loop().call_soon(self._flush)
        self._pending.append(websocket)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The server's loop, looked up once: `asyncio.get_running_loop` makes a getpid
        system call each time, once per broadcast here."""
        loop = self._event_loop
        if loop is None or loop.is_closed():
            loop = self._event_loop = asyncio.get_running_loop()
        return loop

    def _flush(self) -> None:
        websockets, self._pending = self._pending, []
        for websocket in websockets:
            websocket.uncork()


def drop_tracebacks(error: BaseException | None) -> None:
    """Let a closed connection be freed at once, by reference counting.

    A client that drops its connection makes aiohttp's `receive()` end with EofStream
    and then fail to write the CLOSE frame; the response keeps that last error (its
    public `exception()`), whose traceback holds the frames of `receive()` and
    `close()`, which hold the response: a reference cycle. Every connection lost that
    way left about 60 objects (request, protocol, transport, parser, buffers) for the
    cyclic collector, whose passes then took 80-95 ms under churn and were most of the
    message latency's tail (docs/PERFORMANCE.md). The error itself stays readable.
    """
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += [current.__context__, current.__cause__]


def is_websocket_request(request: web.Request) -> bool:
    """The request asks for a WebSocket (the check aiohttp and the metrics middleware make)."""
    return request.headers.get("Upgrade", "").lower() == "websocket"


def asks_for_websocket(environ: dict[str, Any]) -> bool:
    """python-engineio's test for a WebSocket request (Upgrade: websocket, Connection: upgrade)."""
    connection = {token.strip() for token in environ.get("HTTP_CONNECTION", "").lower().split(",")}
    return "upgrade" in connection and environ.get("HTTP_UPGRADE", "").lower() == "websocket"


# Engine.IO packets a client sends after the handshake (the upgrade's own are read in
# `_upgrade`); a PING or NOOP is harmless and ignored, as python-engineio does.
_CLIENT_PACKET_TYPES = frozenset({packet.PONG, packet.MESSAGE, packet.UPGRADE, packet.CLOSE})
_IGNORED_PACKET_TYPES = frozenset({packet.PING, packet.NOOP})


@dataclass(frozen=True, slots=True)
class AcceptedWebSocket:
    """What `FastSocket.handle_get_request` returns for a WebSocket.

    It passes through python-engineio's handler.

    `FastEngineIOServer.handle_request` serves the connection once python-engineio's
    code has returned.
    """

    session: FastSocket
    response: WebSocketResponse


class DirectWebSocket:
    """A session's WebSocket connection, written to without aiohttp's per-message work.

    Text frames are built once per message (and shared by every recipient of a
    broadcast); frames written in one loop iteration go out in one write. This is the
    per-recipient path of every broadcast, so the connection's transport is looked up
    once, here. It is aiohttp's public `Request.transport`; the connection pushes back
    when the transport's write buffer is over its high-water mark (when the protocol is
    paused), and `Request.writer.drain()` waits until it has room again.
    """

    __slots__ = (
        "_corked",
        "_corked_bytes",
        "_high_water",
        "_transport",
        "_uncorker",
        "_writer",
        "response",
    )

    def __init__(
        self, request: web.Request, response: WebSocketResponse, uncorker: Uncorker
    ) -> None:
        transport = request.transport
        if transport is None or not response.prepared:
            raise RuntimeError("the WebSocket handshake has not been made")
        self.response = response
        self._transport: asyncio.WriteTransport = transport
        self._high_water = transport.get_write_buffer_limits()[1]
        self._writer: AbstractStreamWriter = request.writer
        self._uncorker = uncorker
        self._corked: list[bytes] | None = None
        self._corked_bytes = 0

    def _open(self) -> bool:
        """Neither end has started closing.

        A frame written now reaches the client before any CLOSE.
        """
        return not self.response.closed and not self._transport.is_closing()

    def _full(self) -> bool:
        """The write buffer is over its high-water mark.

        Ask only while open: a closed transport raises.
        """
        return self._transport.get_write_buffer_size() > self._high_water

    def pushing_back(self) -> bool:
        """The connection is open but the kernel buffer is full: more would pile up in memory."""
        return self._open() and self._full()

    def writable(self) -> bool:
        """The connection is open and takes data now."""
        return self._open() and not self._full()

    async def drained(self) -> None:
        """Wait until the kernel buffer has room again (raises if the connection is lost)."""
        if self._transport.is_closing():
            raise ConnectionResetError("WebSocket is closed")
        await self._writer.drain()

    def write_now(self, frame: bytes) -> bool:
        """Write a ready frame unless closing or pushing back.

        The write happens at the end of this loop iteration.
        """
        if not self._open() or self._full():
            return False
        corked = self._corked
        if corked is None:
            self._corked = [frame]
            self._corked_bytes = len(frame)
            self._uncorker.soon(self)
        else:
            corked.append(frame)
            self._corked_bytes += len(frame)
        if self._corked_bytes >= CORK_LIMIT_BYTES:
            # A large batch in one iteration: hand it to the transport now, so that the
            # buffer check above sees it and a reader that stopped is found out.
            self.uncork()
        return True

    def uncork(self) -> None:
        """Write every frame collected in this loop iteration with one call."""
        frames, self._corked = self._corked, None
        self._corked_bytes = 0
        if frames and self._open():
            self._transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    async def receive_data(self) -> str | bytes:
        """The next message's data; OSError once the connection is closing.

        That is what python-engineio's driver does.
        """
        data = (await self.response.receive()).data
        if not isinstance(data, str | bytes):
            raise OSError("WebSocket closed")
        return data

    async def close(self, code: int = WSCloseCode.OK, message: str = "") -> None:
        self.uncork()  # frames written before the close go out before the CLOSE frame
        await self.response.close(code=code, message=message.encode()[:123])
        drop_tracebacks(self.response.exception())

    def abort(self) -> None:
        """Drop the TCP connection at once, with whatever is still unsent.

        For a reader that stopped reading: a CLOSE frame would only queue behind the
        bytes it does not read, and the connection would hold its buffers until it did.
        """
        self._corked, self._corked_bytes = None, 0
        sock = self._transport.get_extra_info("socket")
        if sock is not None:  # reset, not FIN: the kernel would keep the unsent bytes otherwise
            with contextlib.suppress(OSError):  # already closed: nothing left to reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self._transport.abort()


class FastSocket(AsyncSocket):  # type: ignore[misc]
    """An Engine.IO session that writes to its WebSocket directly.

    It is pinged by the server's heartbeat.
    """

    last_ping: float | None  # python-engineio's: when the unanswered ping went out
    connected: bool
    websocket: DirectWebSocket | None = None  # while its WebSocket takes packets
    _drain_task: asyncio.Task[None] | None = None  # while it waits for a full buffer to drain
    _closing_websocket: asyncio.Task[None] | None = None  # once told to end its WebSocket
    client_address: str | None = None  # counted against its address's session cap until closed
    joined = False  # has connected to a namespace
    refused: str | None = None  # why the gateway closed it for what it sent
    _poll_waiting = False  # a long-polling GET is waiting for packets
    # The inbound token bucket: a new session starts full (refilled from time 0).
    _inbound_tokens = 0.0
    _inbound_stamp = 0.0

    # -- outgoing ----------------------------------------------------------------------
    def write_now(self, frame: bytes) -> bool:
        """Write `frame` now if that cannot overtake anything; False means "queue it"."""
        websocket = self.websocket
        if websocket is None or self._drain_task is not None or self.closed or self.closing:
            return False
        if not self.queue.empty():
            return False
        return websocket.write_now(frame)

    def packet_queued(self) -> None:
        """A packet was put on the queue: a WebSocket session writes it right away."""
        if self.websocket is not None and self._drain_task is None:
            self._write_queued()

    def _write_queued(self) -> None:
        """Write queued packets while the connection takes them.

        A full kernel buffer leaves the rest queued behind one task that waits for it
        to drain; a `None` ends the WebSocket once what was queued before it is out.
        """
        queue = self.queue
        while (websocket := self.websocket) is not None and not queue.empty():
            if not websocket.writable():
                if websocket.pushing_back() and self._drain_task is None:
                    self._drain_task = self.server.tasks.spawn(self._wait_for_room(websocket))
                return
            pkt = queue.get_nowait()
            queue.task_done()
            if pkt is None:
                self._end_websocket(websocket)
                return
            websocket.write_now(self.server.frames.packet_frame(pkt))

    async def _wait_for_room(self, websocket: DirectWebSocket) -> None:
        try:
            await websocket.drained()
        except ConnectionError:
            return  # the connection is gone: its reader ends the session
        finally:
            self._drain_task = None
        self._write_queued()

    def _end_websocket(self, websocket: DirectWebSocket) -> None:
        """Stop writing and close the connection (the reader then ends the session).

        A refused client's CLOSE frame says why (1008, policy violation, and the reason).
        """
        self.websocket = None
        if self.refused is None:
            self._closing_websocket = self.server.tasks.spawn(websocket.close())
        else:
            self._closing_websocket = self.server.tasks.spawn(
                websocket.close(WSCloseCode.POLICY_VIOLATION, self.refused)
            )

    def abort_websocket(self) -> None:
        """Stop writing and drop the connection without flushing (a stalled reader)."""
        websocket, self.websocket = self.websocket, None
        if websocket is not None:
            websocket.abort()

    # -- heartbeat ---------------------------------------------------------------------
    def schedule_ping(self) -> None:
        """As python-engineio: the next ping goes `ping_interval` after the last PONG."""
        if self.last_ping:
            self.last_ping = None
            self.server.heartbeat.schedule(self)

    def send_ping(self) -> None:
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.queue.put_nowait(packet.Packet(packet.PING))

    def ping_timed_out(self) -> None:
        self.server.tasks.spawn(self._close_silent_client())

    def connect_timed_out(self) -> None:
        """The connect deadline has passed: close the session unless it joined a namespace."""
        if not self.joined and not self.closing and not self.closed:
            self.server.tasks.spawn(
                self.refuse(inbound.CONNECT_TIMEOUT, "no namespace CONNECT in time")
            )

    async def _close_silent_client(self) -> None:
        """Close a client that did not answer a ping in time, and its connection.

        No CLOSE packet: the client is not listening (python-engineio's own timeout
        check does not get one out either, its `send` refuses after a ping timeout).
        """
        await self.close(wait=False, abort=True, reason=self.server.reason.PING_TIMEOUT)
        websocket = self.websocket
        if websocket is not None:
            discard_queued(self.queue)
            self._end_websocket(websocket)

    # -- transports --------------------------------------------------------------------
    async def handle_get_request(self, environ: dict[str, Any]) -> Any:
        """python-engineio's GET handling; a WebSocket is accepted here and served later.

        The handshake (refusing compression) is made here and returned as an
        `AcceptedWebSocket` through python-engineio's request handling, which passes it
        on unchanged; `FastEngineIOServer.handle_request` then serves the connection
        once python-engineio's frames are gone.
        """
        request = environ.get("aiohttp.request")
        if not isinstance(request, web.Request) or not asks_for_websocket(environ):
            return await super().handle_get_request(environ)
        if self.upgraded:
            raise OSError("Socket has been upgraded already")  # as python-engineio
        response = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await response.prepare(request)
        release_http_parser(request)
        share_idle_writer_state(response, self.server.idle_writer_state)
        return AcceptedWebSocket(self, response)

    async def poll(self) -> list[Any]:
        timeout = self.server.ping_interval + self.server.ping_timeout
        self._poll_waiting = True
        LONG_POLLS_WAITING.inc()
        try:
            async with asyncio.timeout(timeout):
                packets = [await self.queue.get()]
        except (TimeoutError, asyncio.CancelledError):
            # As upstream: a cancelled or timed-out wait ends the session's transport.
            raise exceptions.QueueEmpty() from None
        finally:
            self._poll_waiting = False
            LONG_POLLS_WAITING.dec()
        self.queue.task_done()
        if packets == [None]:
            return []
        # One long-polling response carries at most what python-engineio's own client
        # accepts in a payload (it drops the connection beyond that); the rest waits
        # for the next poll.
        while len(packets) < MAX_PACKETS_PER_POLL:
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

    async def open_websocket(self, websocket: DirectWebSocket) -> bool:
        """Take `websocket` as this session's transport (after the upgrade handshake, if polling).

        False if the upgrade failed: the session goes on with long-polling.
        """
        if self.connected:
            if not await self._upgrade(websocket):
                return False
        else:
            self.connected = True
            self.upgraded = True
        self.websocket = websocket
        self._write_queued()  # what was queued before the WebSocket took over
        return True

    async def on_message(self, data: Any) -> bool:
        """Handle one WebSocket message; False ends the WebSocket and the session.

        As python-engineio, except that the session also ends once it is closed (the
        client's Engine.IO CLOSE, or a refusal) instead of lingering until the ping
        timeout, and that an undecodable packet is refused rather than logged.
        """
        if not isinstance(data, str | bytes) or len(data) > self.server.max_http_buffer_size:
            return False  # closed, an error, or too large
        try:
            pkt = packet.Packet(encoded_packet=data)
        except Exception as exc:  # noqa: BLE001 - whatever a broken frame raises
            await self.refuse(
                inbound.MALFORMED, f"undecodable Engine.IO packet ({type(exc).__name__})"
            )
            return False
        try:
            await self.receive(pkt)
        except exceptions.SocketIsClosedError:
            return False
        except Exception:
            self.server.logger.exception("Unknown receive error")
        return not self.closed

    # -- inbound guard -----------------------------------------------------------------
    async def receive(self, pkt: packet.Packet) -> None:
        """python-engineio's `receive`, for admitted packets only (both transports come here)."""
        if self.closing or self.closed:
            return
        limits: GatewayLimits = self.server.limits
        if limits.inbound_packets_per_second > 0:
            now = time.monotonic()
            admitted, self._inbound_tokens = inbound.take_token(
                self._inbound_tokens,
                self._inbound_stamp,
                now,
                limits.inbound_packets_per_second,
                limits.inbound_packet_burst,
            )
            self._inbound_stamp = now
            if not admitted:
                await self.refuse(inbound.RATE, "inbound packet rate over the limit")
                return
        if pkt.binary:
            await self.refuse(inbound.BINARY, "binary packets are not accepted")
            return
        if pkt.packet_type not in _CLIENT_PACKET_TYPES:
            if pkt.packet_type not in _IGNORED_PACKET_TYPES:
                await self.refuse(
                    inbound.MALFORMED,
                    f"Engine.IO packet type {pkt.packet_type!r} is not sent by clients",
                )
            return
        await super().receive(pkt)
        if pkt.packet_type == packet.CLOSE and self._poll_waiting:
            # Engine.IO: a poll pending when the client closes completes with a NOOP.
            self.queue.put_nowait(packet.Packet(packet.NOOP))
            self.queue.put_nowait(None)

    async def handle_post_request(self, environ: dict[str, Any]) -> None:
        """A long-polling POST: python-engineio's, refusing an undecodable payload.

        The body's size was checked before (`FastEngineIOServer.handle_request`).
        """
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            body = (await environ["wsgi.input"].readexactly(length)).decode("utf-8")
            packets = Payload(encoded_payload=body).packets
        except asyncio.IncompleteReadError:
            raise exceptions.EngineIOError("incomplete request body") from None
        except Exception as exc:  # noqa: BLE001 - whatever a broken payload raises
            await self.refuse(
                inbound.MALFORMED, f"undecodable Engine.IO payload ({type(exc).__name__})"
            )
            return
        for pkt in packets:
            if self.closing or self.closed:
                break
            await self.receive(pkt)

    async def refuse(self, reason: str, detail: str) -> None:
        """Close this session for what its client sent: counted, logged once, CLOSE sent.

        The `None` after the CLOSE packet ends the WebSocket (with a 1008 close frame
        naming `reason`) or a pending long-poll.
        """
        if self.refused is not None or self.closing or self.closed:
            return
        self.refused = reason
        inbound.count_refusal(reason, self.client_address, detail)
        await self.close(wait=False, abort=False, reason=self.server.reason.SERVER_DISCONNECT)
        self.queue.put_nowait(None)

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        self.server.release_address(self)
        await super().close(wait=wait, abort=abort, reason=reason)

    async def _receive_data(self, websocket: DirectWebSocket) -> str | bytes:
        data = await websocket.receive_data()
        if len(data) > self.server.max_http_buffer_size:
            raise ValueError("packet is too large")
        return data

    async def _upgrade(self, websocket: DirectWebSocket) -> bool:
        """The polling-to-WebSocket upgrade handshake, as python-engineio runs it."""
        self.upgrading = True  # hold packet sends during the upgrade
        try:
            pkt = packet.Packet(encoded_packet=await self._receive_data(websocket))
            if pkt.packet_type != packet.PING or pkt.data != "probe":
                self.server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
                return False
            await websocket.response.send_str(packet.Packet(packet.PONG, data="probe").encode())
            await self.queue.put(packet.Packet(packet.NOOP))  # end the pending poll
            pkt = packet.Packet(encoded_packet=await self._receive_data(websocket))
            if pkt.packet_type != packet.UPGRADE:
                self.server.logger.info(
                    "%s: Failed websocket upgrade, expected UPGRADE packet", self.sid
                )
                return False
        except OSError:
            return False
        except Exception as exc:  # noqa: BLE001 - whatever an undecodable probe raises
            await self.refuse(
                inbound.MALFORMED, f"undecodable upgrade packet ({type(exc).__name__})"
            )
            return False
        finally:
            self.upgrading = False
        self.upgraded = True
        return True

    async def end_websocket(self, websocket: DirectWebSocket) -> None:
        """As python-engineio once its reader stops: send what is queued, close both ends."""
        if self.websocket is websocket:
            self._write_queued()
            self.websocket = None
        closing = self._closing_websocket
        await (closing if closing is not None else websocket.close())
        discard_queued(self.queue)
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)


@dataclass(frozen=True)
class GatewayLimits:
    """What one client may make a gateway hold and do; the defaults limit nothing."""

    connect_timeout: float = 0.0  # seconds to connect to a namespace; 0: no deadline
    max_pending_sessions_per_address: int = 0  # 0: no cap
    inbound_packets_per_second: float = 0.0  # token refill rate; 0: no limit
    inbound_packet_burst: int = 1
    trusted_proxies: Sequence[IpNetwork] = field(default_factory=tuple)


_HANDSHAKE_METHODS = frozenset({"GET", "POST", "OPTIONS"})


def _refusal(status: int, message: str, code: str) -> web.Response:
    """A short JSON error that also ends the HTTP connection (no unread body is waited for)."""
    response = web.json_response({"message": message, "code": code}, status=status)
    response.force_close()
    return response


class FastEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server with the session, queue and WebSocket classes above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # What the server owns (nothing is shared between two servers in one process).
        self.tasks = BackgroundTasks()
        self.frames = FrameCache()
        self.uncorker = Uncorker()
        self.idle_writer_state = IdleWriterState()
        # python-engineio's client monitor checks each session's ping in turn, one task
        # and one timer per session every ping timeout: a fifth of an idle gateway's CPU
        # at 5,000 connections. The heartbeat keeps those deadlines instead, and
        # `_forget_closed_sessions` does the monitor's other job.
        kwargs.setdefault("monitor_clients", False)
        super().__init__(*args, **kwargs)
        self._forgetting: asyncio.Task[None] | None = None
        use_raw_uri_environ(self)
        self.heartbeat = Heartbeat(self.ping_interval, self.ping_timeout)
        self.limits = GatewayLimits()
        self.sessions_by_address: Counter[str] = Counter()

    def on(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        """python-engineio's `on`; the connect handler first makes a new session a `FastSocket`."""
        if event != "connect":
            return super().on(event, handler)

        def register(connect: Callable[..., Any]) -> Callable[..., Any]:
            async def adopting_connect(sid: str, environ: dict[str, Any]) -> Any:
                self.adopt(sid, environ)
                result = connect(sid, environ)
                return await result if asyncio.iscoroutine(result) else result

            super(FastEngineIOServer, self).on("connect", adopting_connect)
            return connect

        return register if handler is None else register(handler)

    def adopt(self, sid: str, environ: dict[str, Any]) -> None:
        """Make the new session `sid` a `FastSocket`, counted against its client's limits."""
        socket = self.sockets.get(sid)
        if socket is None or not adopt_session(socket, FastSocket):
            return
        if isinstance(socket.queue, PacketQueue):
            socket.queue.listener = socket
        request = environ.get("aiohttp.request")
        self.count_session(socket, request if isinstance(request, web.Request) else None)
        if self._forgetting is None and not self.start_service_task:
            self._forgetting = self.tasks.spawn(self._forget_closed_sessions())

    async def _forget_closed_sessions(self) -> None:
        """Drop closed sessions no request will come for any more, every few seconds.

        A WebSocket session is dropped when its connection ends and a polling one after
        its last request (`_drop_if_done`); this catches a polling session closed with
        no request of its own to follow, such as one whose client stopped answering
        pings, as python-engineio's client monitor would.
        """
        while True:
            await asyncio.sleep(FORGET_CLOSED_SECONDS)
            for sid, session in list(self.sockets.items()):
                if session.closed and not getattr(session, "_poll_waiting", False):
                    del self.sockets[sid]

    def start_background_task(
        self, target: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        """python-engineio's (and python-socketio's) background tasks, owned by this server."""
        return self.tasks.spawn(target(*args, **kwargs))

    def set_limits(self, limits: GatewayLimits) -> None:
        self.limits = limits
        self.heartbeat.connect_timeout = limits.connect_timeout

    def address_of(self, request: web.Request) -> str:
        """The client's address behind the trusted proxies.

        python-engineio's REMOTE_ADDR is a constant. Worked out again for each use (twice
        per handshake) rather than kept on the request: a WebSocket's handshake request
        lives as long as the connection, and a value stored on it cost every connection
        a dict of its own (about 220 bytes).
        """
        return client_address(
            request.remote, forwarded_for_values(request.headers), self.limits.trusted_proxies
        )

    def count_session(self, socket: FastSocket, request: web.Request | None) -> None:
        """Count a new session against its address's cap until it signs in.

        The session also gets a connect deadline.
        """
        if request is not None:
            socket.client_address = address = self.address_of(request)
            self.sessions_by_address[address] += 1
        if self.limits.connect_timeout > 0:
            self.heartbeat.expect_connect(socket)

    def release_address(self, socket: FastSocket) -> None:
        """A session that signed in or closed stops counting against its address (once).

        Only sessions that have not signed in are capped per address: many users behind
        one NAT share an address, and each signed-in user is already capped by
        MAX_CONNECTIONS_PER_USER.
        """
        address, socket.client_address = socket.client_address, None
        if address is not None:
            left = self.sessions_by_address[address] - 1
            if left > 0:
                self.sessions_by_address[address] = left
            else:
                del self.sessions_by_address[address]

    async def _answer_before_engineio(self, request: web.Request) -> web.StreamResponse | None:
        """Requests answered here instead of by python-engineio, or None.

        Where python-engineio departs from the Engine.IO v4 specification (an
        unsupported method, a handshake without `transport`, a second WebSocket for an
        upgraded session), and what the gateway's limits refuse (too many sessions from
        one address, a POST body over MAX_INBOUND_BYTES) before any of it is read.
        """
        method = request.method
        if method not in _HANDSHAKE_METHODS:
            return _refusal(400, f"method {method} is not supported", "bad_method")
        query = request.query
        sid = query.get("sid")
        if sid is None:
            if method != "GET":
                return None  # python-engineio answers 400 (no session) or the CORS preflight
            if "transport" not in query:
                return _refusal(400, "the transport query parameter is required", "bad_transport")
            cap = self.limits.max_pending_sessions_per_address
            if cap and self.sessions_by_address.get(self.address_of(request), 0) >= cap:
                SESSIONS_REFUSED.inc()
                return _refusal(429, "too many sessions from this address", "too_many_sessions")
            return None
        session = self.sockets.get(sid)
        if not isinstance(session, FastSocket):
            return None
        if method == "POST":
            size = request.content_length
            if size is not None and size > self.max_http_buffer_size:
                await session.refuse(inbound.TOO_LARGE, f"POST body of {size} bytes")
                self._drop_if_done(session)
                return _refusal(413, "payload too large", "payload_too_large")
        elif session._poll_waiting and not is_websocket_request(request):
            # Engine.IO: a client has one GET at a time; a second one closes the session
            # (the first poll completes with the CLOSE packet).
            await session.refuse(inbound.MALFORMED, "a second concurrent poll")
            return _refusal(400, "a poll is already pending for this session", "duplicate_poll")
        elif session.upgraded and is_websocket_request(request):
            # Engine.IO: a second WebSocket for an upgraded session is accepted, then closed.
            extra = WebSocketResponse()
            await extra.prepare(request)
            await extra.close()
            return extra
        return None

    def _drop_if_done(self, session: FastSocket) -> None:
        """Forget a closed polling session at once unless a pending poll is still to be answered.

        Later requests for it then get 400 (Engine.IO), where python-engineio would
        answer one more poll.
        """
        if (
            session.closed
            and not session._poll_waiting
            and self.sockets.get(session.sid) is session
        ):
            del self.sockets[session.sid]

    def create_queue(self, *args: Any, **kwargs: Any) -> PacketQueue:
        return PacketQueue(*args, **kwargs)

    # Wraps each request that is not a WebSocket session (the gateway's latency metrics).
    # An aiohttp middleware would stay on the stack of every WebSocket for its lifetime.
    http_middleware: Middleware | None = None

    async def handle_request(self, request: web.Request) -> Any:
        """python-engineio's request handling; a WebSocket session is served after it has returned.

        What this coroutine holds while a session reads lives as long as the
        connection, so a FastSocket's reading loop is written out here, with no task
        or timer per read and no message kept while the next one is awaited. There is
        no read timeout: the heartbeat closes a client that stops answering pings when
        python-engineio's read timeout would have (ping_interval + ping_timeout after
        its last PONG).
        """
        if not is_websocket_request(request):
            if self.http_middleware is not None:
                return await self.http_middleware(request, self._handle_http)
            return await self._handle_http(request)
        early = await self._answer_before_engineio(request)
        if early is not None:
            return early
        accepted = await super().handle_request(request)
        if not isinstance(accepted, AcceptedWebSocket):
            return accepted
        session, connection = accepted.session, accepted.response
        del accepted  # python-engineio's part is done
        websocket = DirectWebSocket(request, connection, self.uncorker)
        if await session.open_websocket(websocket):
            try:
                while True:
                    try:
                        message = await connection.receive()
                    except Exception:  # noqa: BLE001 - reset or broken: the session ends
                        break
                    if not await session.on_message(message.data):
                        break
                    del message
            finally:
                await session.end_websocket(websocket)
        # As python-engineio: a session whose WebSocket request ended closed is dropped.
        if session.closed and self.sockets.get(session.sid) is session:
            del self.sockets[session.sid]
        return connection

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        """A long-polling (or plain HTTP) request: the checks above, then python-engineio."""
        early = await self._answer_before_engineio(request)
        if early is not None:
            return early
        response: web.StreamResponse = await super().handle_request(request)
        if request.method == "POST":
            session = self.sockets.get(request.query.get("sid", ""))
            if isinstance(session, FastSocket):
                self._drop_if_done(session)
                if session.refused is not None:
                    return _refusal(400, f"session closed: {session.refused}", session.refused)
        return response

    async def shutdown(self) -> None:
        """Stop the heartbeat and python-engineio's service.

        Then cancel and await every task of this server.
        """
        self.heartbeat.stop()
        await super().shutdown()
        await self.tasks.cancel_all()


def answer_every_method(
    app: web.Application, server: FastEngineIOServer, path: str = "/socket.io/"
) -> None:
    """Route every other HTTP method of the Engine.IO path to `server` too.

    python-engineio's aiohttp driver routes GET, POST and OPTIONS only, so aiohttp
    answered anything else 405; the Engine.IO specification wants 400, which
    `FastEngineIOServer.handle_request` gives.
    """
    app.router.add_route("*", path, server.handle_request)
