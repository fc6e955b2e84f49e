"""A lean Socket.IO (Engine.IO v4, websocket only) receiving client, and the generator process.

Why not python-socketio's client or aiohttp's websocket: the load generator shares the
machine's two cores with the servers it measures, so each delivery must cost it as
little as possible. This client is an `asyncio.Protocol` that speaks just enough
RFC 6455: it sends the upgrade request, parses unmasked server frames straight out of
the receive buffer, and sends its few frames (`40{auth}`, pong `3`) masked with a zero
key (legal: the key only has to be present).

In a rooms load (bench/rooms.py) a client connects with `auth: {token, rooms: true}`,
receives `message` events instead of `getAllmessages`, and counts only the messages of
its own room; one of another room is `misrouted`. For the Node reference, which has no
membership store, the client also names its room in the query (`&room=<id>`) and the
server puts the socket in it.

One generator process (`worker_main`) holds a slice of the clients and talks to the
orchestrator over a `multiprocessing` pipe with small dict commands:

    {"cmd": "window", "base": first_seq, "count": n}  start counting deliveries of seqs
                                                      base .. base+n-1
    {"cmd": "poll"}                                   -> {"delivered": int, "expected": int}
    {"cmd": "collect"}                                -> counts, latencies (array bytes)
    {"cmd": "typing", "period": s, "typists": [[i, room id], ...]}
                                                      client i (if it is here) emits
                                                      `typing` in its room every s seconds
                                                      (s = 0: stop)
    {"cmd": "close"}                                  close every socket and exit
"""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from array import array
from collections import deque
from typing import Any
from urllib.parse import quote

import orjson

from bench.common import pipe_commands
from bench.rooms import RoomLayout, room_id

EVENT_PREFIX = b'42["getAllmessages",'
ROOM_EVENT_PREFIX = b'42["message",'
_UPGRADE = (
    "GET /socket.io/?EIO=4&transport=websocket&token={token}{query} HTTP/1.1\r\n"
    "Host: {host}:{port}\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: YmVuY2gtY2xpZW50LWtleQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "{extensions}"
    "\r\n"
)
# What every browser offers; a server that accepts compresses each frame per client.
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A client frame: FIN, `opcode`, masked with the all-zero key (payload unchanged)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


class Window:
    """Delivery bookkeeping for one measured window, shared by a process's clients.

    Each client has `per_client` receipt counters, one per message of its room in the
    window (in the global room: one per message).
    """

    def __init__(self, n_clients: int, base: int, count: int, layout: RoomLayout) -> None:
        self.base = base
        self.count = count
        self.slots = layout.slots
        self.per_client = layout.per_room_slots(count)
        # receipts per (client, message of its room), saturating at 255
        self.counts = bytearray(n_clients * self.per_client)
        self.latencies = array("d")  # seconds, one per delivery (duplicates included)
        self.delivered = 0
        self.expected = 0  # deliveries due to the clients connected when the window opened
        self.foreign = 0  # seqs outside the window (late ones from a previous window)
        self.misrouted = 0  # a message of another room than the client's
        self.first_recv = 0.0
        self.last_recv = 0.0
        self.events: dict[str, int] = {}  # other events received, by name


class EioClient(asyncio.Protocol):
    """One Socket.IO client that only receives `getAllmessages`."""

    def __init__(
        self, proc: GeneratorProcess, index: int, token: str, host: str, port: int
    ) -> None:
        self.proc = proc
        self.index = index
        self.token = token
        self.host = host
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.connected: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.fragments: bytearray | None = None
        self.fragments_rsv1 = False
        self.closed = False
        self.inflater: Any = None  # zlib decompressor once the server accepted deflate

    # -- transport events ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        query = ""
        if self.proc.room_in_query:
            query = "&room=" + self.proc.room_ids[self.index]
        request = _UPGRADE.format(
            token=quote(self.token),
            query=query,
            host=self.host,
            port=self.port,
            extensions=DEFLATE_OFFER if self.proc.deflate else "",
        )
        transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.connected.done():
            self.connected.set_result(f"connection lost before connect: {exc!r}")
        elif self.proc.measuring:
            self.proc.disconnects += 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                self._fail(f"upgrade refused: {status.decode(errors='replace')}")
                return
            self.upgraded = True
            head_text = bytes(buf[:end]).lower()
            if b"permessage-deflate" in head_text:
                self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                self.proc.deflate_accepted += 1
            del buf[: end + 4]
        now = time.time()
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:  # servers must not mask; tolerate it anyway
                head += 4
            if size - pos < head + n:
                break
            payload = bytes(buf[pos + head : pos + head + n])
            if b1 & 0x80:
                key = buf[pos + head - 4 : pos + head]
                payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
            pos += head + n
            opcode = b0 & 0x0F
            rsv1 = b0 & 0x40
            if not b0 & 0x80:  # fragmented message: collect until FIN
                if opcode:
                    self.fragments = bytearray(payload)
                    self.fragments_rsv1 = bool(rsv1)
                elif self.fragments is not None:
                    self.fragments += payload
                continue
            if opcode == 0 and self.fragments is not None:
                payload = bytes(self.fragments + payload)
                rsv1 = self.fragments_rsv1
                self.fragments = None
                opcode = 1
            if rsv1 and self.inflater is not None:
                payload = self.inflater.decompress(payload + _DEFLATE_TAIL)
            if opcode == 1:
                self._on_eio(payload, now)
            elif opcode == 9:
                self._send(payload, opcode=10)
            elif opcode == 8:
                self._close()
                break
        if pos:
            del buf[:pos]

    # -- Engine.IO / Socket.IO ---------------------------------------------------------
    def _on_eio(self, p: bytes, now: float) -> None:
        if p.startswith(self.proc.event_prefix):
            self.proc.on_message(self.index, p, now)
        elif p[:4] == b'42["':  # another event (presence, typing, readUpdated, receipts)
            self.proc.on_event(p[4 : p.find(b'"', 4)])
        elif p == b"2":
            self._send(b"3")
        elif p[:1] == b"0":  # Engine.IO open: connect the default namespace
            self._send(b"40" + orjson.dumps(self.proc.auth(self.token)))
        elif p[:2] == b"40":
            if not self.connected.done():
                self.connected.set_result("")
        elif p[:2] == b"44":
            self._fail(f"connect_error {p[2:200].decode(errors='replace')}")
        elif p[:2] == b"41" or p == b"1":
            self._close()

    def _send(self, payload: bytes, opcode: int = 1) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ws_frame(payload, opcode))

    def _fail(self, reason: str) -> None:
        if not self.connected.done():
            self.connected.set_result(reason)
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class GeneratorProcess:
    """The clients of one generator process and their delivery counters."""

    def __init__(
        self,
        targets: list[tuple[str, int]],
        tokens: list[str],
        first_index: int,
        deflate: bool = False,
        layout: RoomLayout | None = None,
        room_in_query: bool = False,
    ) -> None:
        # Client i connects to targets[(first_index + i) % len(targets)]: spread evenly.
        self.targets = targets
        self.tokens = tokens
        self.first_index = first_index
        self.layout = layout or RoomLayout(0, len(tokens))
        rooms = not self.layout.global_room
        self.event_prefix = ROOM_EVENT_PREFIX if rooms else EVENT_PREFIX
        self.room_in_query = rooms and room_in_query
        # The room of each local client, by number and by id.
        self.client_rooms = [
            self.layout.room_of_client(first_index + i) for i in range(len(tokens))
        ]
        self.room_ids = [room_id(r) for r in self.client_rooms] if rooms else []
        self.clients: list[EioClient] = []
        self.window: Window | None = None
        self.measuring = False
        self.disconnects = 0
        self.deflate = deflate
        self.deflate_accepted = 0
        self.typing_task: asyncio.Task[None] | None = None
        self.typing_sent = 0

    def auth(self, token: str) -> dict[str, Any]:
        """The Socket.IO CONNECT payload: the token, and the rooms flag in a rooms load."""
        if self.layout.global_room:
            return {"token": token}
        return {"token": token, "rooms": True}

    def on_message(self, index: int, payload: bytes, now: float) -> None:
        window = self.window
        if window is None:
            return
        msg = orjson.loads(payload[2:])[1]
        seq = int(msg["_id"])
        # Published to Redis: `ts` field; posted through the API: the text is the send time.
        window.latencies.append(now - (msg["ts"] if "ts" in msg else float(msg["text"])))
        window.delivered += 1
        offset = seq - window.base
        if not 0 <= offset < window.count:
            window.foreign += 1
        elif self.room_ids and (
            msg.get("room") != self.room_ids[index]
            or self.layout.room_of_seq(seq) != self.client_rooms[index]
        ):
            window.misrouted += 1
        else:
            slot = index * window.per_client + offset // window.slots
            if window.counts[slot] < 255:
                window.counts[slot] += 1
        if not window.first_recv:
            window.first_recv = now
        window.last_recv = now

    def on_event(self, name: bytes) -> None:
        """Count an event other than a message (what the room state load sends)."""
        window = self.window
        if window is not None and self.measuring:
            key = name.decode(errors="replace")
            window.events[key] = window.events.get(key, 0) + 1

    def start_typing(self, period: float, typists: list[list[Any]]) -> None:
        """Client i of `typists` (those here) emits `typing` in its room every `period` s.

        Like a client that throttles its keystrokes to one event a second: each sends
        again `period` after its last one, so two of its events are never closer than
        that when they leave. The typists start spread evenly over the first period.
        """
        self.stop_typing()
        by_index = {c.index: c for c in self.clients}
        here = []
        for global_index, room in typists:
            client = by_index.get(global_index - self.first_index)
            if client is not None:
                packet = b'42["typing",' + orjson.dumps({"room": room}) + b"]"
                here.append((client, packet))
        if period > 0 and here:
            self.typing_task = asyncio.create_task(self._type(period, here))

    def stop_typing(self) -> None:
        if self.typing_task is not None:
            self.typing_task.cancel()
            self.typing_task = None

    async def _type(self, period: float, typists: list[tuple[EioClient, bytes]]) -> None:
        start = time.monotonic()
        due: deque[tuple[float, int]] = deque(
            (start + period * k / len(typists), k) for k in range(len(typists))
        )
        while True:
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, k = due.popleft()
                client, packet = typists[k]
                client._send(packet)
                self.typing_sent += 1
                due.append((now + period, k))
            await asyncio.sleep(0.01)

    async def connect_all(self, concurrency: int, timeout: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        errors: dict[str, int] = {}

        async def one(i: int, token: str) -> None:
            host, port = self.targets[(self.first_index + i) % len(self.targets)]
            async with gate:
                try:
                    _, client = await asyncio.wait_for(
                        loop.create_connection(
                            lambda: EioClient(self, i, token, host, port), host, port
                        ),
                        timeout,
                    )
                    self.clients.append(client)
                    reason = await asyncio.wait_for(asyncio.shield(client.connected), timeout)
                except (OSError, TimeoutError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
            if reason:
                errors[reason[:120]] = errors.get(reason[:120], 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(one(i, t) for i, t in enumerate(self.tokens)))
        ok = sum(1 for c in self.clients if c.connected.done() and not c.connected.result())
        self.clients.sort(key=lambda c: c.index)
        return {
            "connected": ok,
            "failed": len(self.tokens) - ok,
            "errors": errors,
            "deflate_accepted": self.deflate_accepted,
            "seconds": time.monotonic() - started,
        }

    def live(self) -> list[int]:
        """Indexes of the clients that connected and are still connected."""
        return [
            c.index
            for c in self.clients
            if c.connected.done() and not c.connected.result() and not c.closed
        ]

    def due(self, index: int, window: Window) -> int:
        """How many of the window's messages client `index` should receive."""
        return self.layout.expected_in_window(self.client_rooms[index], window.base, window.count)

    def open_window(self, base: int, count: int) -> Window:
        window = Window(len(self.tokens), base, count, self.layout)
        window.expected = sum(self.due(i, window) for i in self.live())
        self.window = window
        return window

    def collect(self) -> dict[str, Any]:
        window = self.window
        assert window is not None
        live = [c.index for c in self.clients if c.connected.done() and not c.connected.result()]
        expected = unique = dup = 0
        counts = window.counts
        per = window.per_client
        for index in live:
            n = self.due(index, window)
            row = counts[index * per : index * per + n]
            missing = row.count(0)
            expected += n
            unique += n - missing
            dup += sum(row) - (n - missing)
        return {
            "expected": expected,
            "unique": unique,
            "lost": expected - unique,
            "duplicates": dup,
            "delivered": window.delivered,
            "foreign": window.foreign,
            "misrouted": window.misrouted,
            "disconnects": self.disconnects,
            "first_recv": window.first_recv,
            "last_recv": window.last_recv,
            "latencies": window.latencies.tobytes(),
            "events": window.events,
            "typing_sent": self.typing_sent,
        }


async def _serve(conn: Any, proc: GeneratorProcess, concurrency: int, timeout: float) -> None:
    conn.send({"ready": await proc.connect_all(concurrency, timeout), "pid": os.getpid()})
    commands = pipe_commands(conn)
    while True:
        command = await commands.get()
        kind = command["cmd"]
        if kind == "window":
            window = proc.open_window(command["base"], command["count"])
            proc.disconnects = 0
            proc.typing_sent = 0
            proc.measuring = True
            conn.send({"ok": True, "expected": window.expected})
        elif kind == "poll":
            conn.send(
                {
                    "delivered": proc.window.delivered if proc.window else 0,
                    "expected": proc.window.expected if proc.window else 0,
                    "last_recv": proc.window.last_recv if proc.window else 0.0,
                }
            )
        elif kind == "collect":
            proc.measuring = False
            result = proc.collect()
            os.set_blocking(conn.fileno(), True)
            conn.send(result)
        elif kind == "typing":
            proc.start_typing(command["period"], command.get("typists", []))
            conn.send({"ok": True, "typing_sent": proc.typing_sent})
        elif kind == "close":
            proc.stop_typing()
            for client in proc.clients:
                client._close()
            await asyncio.sleep(0.2)
            conn.send({"closed": True})
            return


def worker_main(
    conn: Any,
    targets: list[tuple[str, int]],
    tokens: list[str],
    first_index: int,
    concurrency: int,
    timeout: float,
    deflate: bool = False,
    layout: RoomLayout | None = None,
    room_in_query: bool = False,
) -> None:
    """Entry point of a generator process (multiprocessing, spawn)."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    proc = GeneratorProcess(targets, tokens, first_index, deflate, layout, room_in_query)
    runner(_serve(conn, proc, concurrency, timeout))
