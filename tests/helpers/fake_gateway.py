"""A delivery manager with fake Engine.IO sockets, for unit tests of pure routing logic.

What is under test with these is who gets which packet, in which order; the
integration suites run the same paths with real clients on real replicas.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import socketio

from services.realtime_service.delivery import OrderedRedisManager
from services.realtime_service.history import HistoryReader
from services.realtime_service.transport import FrameCache
from services.shared import jsonenc


class OrjsonPacket(socketio.packet.Packet):
    """The packet class as the gateway configures it (orjson, UTF-8 kept as is)."""

    json = jsonenc


class FakeSocket:
    """An Engine.IO session that only queues: no WebSocket, so every packet is queued."""

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False
        self.closing = False
        self.close_calls: list[dict[str, Any]] = []
        self.server = SimpleNamespace(start_background_task=self._start)

    @staticmethod
    def _start(target: Any, *args: Any, **kwargs: Any) -> asyncio.Task[Any]:
        return asyncio.ensure_future(target(*args, **kwargs))

    async def close(self, **kwargs: Any) -> None:
        self.close_calls.append(kwargs)
        self.closed = True

    def drain(self) -> list[Any]:
        """Every packet queued so far, oldest first (None ends the transport)."""
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items

    def events(self) -> list[tuple[str, Any]]:
        """Every event queued so far as (name, data), oldest first."""
        out = []
        for pkt in self.drain():
            encoded = pkt.encode()
            assert encoded.startswith("42"), encoded
            name, data = orjson.loads(encoded[2:])
            out.append((name, data))
        return out


def unit_manager(max_queued: int = 100) -> OrderedRedisManager:
    """A delivery manager with no Redis, on a fake server holding no sockets yet."""
    manager = OrderedRedisManager(
        "redis://127.0.0.1:1/0",
        "unit",
        HistoryReader(None, "unit:history", 10),  # type: ignore[arg-type]
        gap_check_seconds=60,
        max_queued_packets=max_queued,
    )
    manager.server = SimpleNamespace(  # type: ignore[assignment]
        packet_class=OrjsonPacket,
        eio=SimpleNamespace(sockets={}, frames=FrameCache()),
    )
    return manager


def plug(manager: OrderedRedisManager, sid: str, eio_sid: str) -> FakeSocket:
    """A fake session connected to `/` as `sid`."""
    sock = FakeSocket(eio_sid)
    manager.server.eio.sockets[eio_sid] = sock
    manager.basic_enter_room(sid, "/", None, eio_sid=eio_sid)
    return sock
