"""Passing moved read markers on to the sockets of this replica (docs/ROOM_STATE.md).

The API announces each marker that moved on the reads channel (services/shared/
read_state.py), those of a few milliseconds in one message. Every replica listens, and

* sends `readUpdated` `{"room", "lastRead"}` at once to the reader's own rooms-aware
  sockets here (their other tabs and devices);
* when the notice is a receipt, keeps the reader's newest marker for the room and,
  at most once per `batch_seconds` per room, sends the room's members here one
  `receipts` event `{"room", "readers": [{"user", "lastRead"}]}` with every reader
  whose marker moved since the last one. A room of many readers costs its members
  one event per window, not one per reader per message.

The window is split into `SLOTS` slots and each room has one of them, by a hash of
its id: a room's receipts go out at its slot, once per window. One instant for every
room would send all rooms' receipts together, once a second: with 250 rooms of
receipts per replica that burst was what most delayed the messages behind it.

Markers are ephemeral: they are not in the message order (no ordering lock, no
replay). A notice published while this replica was not subscribed (Redis restarting)
is lost; clients read the markers over REST when they connect, and the next marker
that moves brings them up to date. Markers only move forward, so a client keeps the
greatest `lastRead` it has seen of each reader.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from typing import Any, Protocol

import redis.asyncio as aioredis

from services.realtime_service.metrics import READ_NOTICES, RECEIPT_BATCHES
from services.realtime_service.subscriptions import ChannelSubscription
from services.shared.read_state import READ_UPDATED_EVENT, RECEIPTS_EVENT, ReadNotice
from services.shared.redis_contract import RedisKeys
from services.shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Rooms whose receipts a flush sends before it lets the loop run something else.
ROOMS_PER_TURN = 25
# The slots of a window, each with its own rooms (module docstring).
SLOTS = 20


def slot_of(room: str) -> int:
    """The room's slot: the same on every replica and after every restart."""
    return zlib.crc32(room.encode()) % SLOTS


class Sockets(Protocol):
    """What this module needs of the delivery manager (delivery.OrderedRedisManager)."""

    def send_to_user(self, user_id: str, event: str, data: Any) -> int: ...

    def holds_room(self, room: str) -> bool: ...

    async def send_to_room(self, room: str, event: str, data: Any) -> int: ...


class ReadNoticeListener:
    """Subscribe to the reads channel; pass markers on at once and receipts in batches."""

    def __init__(
        self, redis: aioredis.Redis, keys: RedisKeys, sockets: Sockets, batch_seconds: float
    ) -> None:
        self._redis = redis
        self._reads_channel = keys.reads_channel
        self._sockets = sockets
        self._batch_seconds = batch_seconds
        # Per slot: room -> reader -> newest marker.
        self._pending: list[dict[str, dict[str, int]]] = [{} for _ in range(SLOTS)]
        self._has_pending = asyncio.Event()
        self._batches: asyncio.Task[None] | None = None
        self._subscription = ChannelSubscription(
            redis, [self._reads_channel], "read-notices", self._received
        )
        self.subscribed = self._subscription.subscribed

    def start(self) -> None:
        self._subscription.start()
        self._batches = asyncio.create_task(self._send_receipts_forever(), name="receipt-batches")

    async def stop(self) -> None:
        await self._subscription.stop()
        await cancel_and_wait(self._batches)

    async def _received(self, _channel: str, data: bytes) -> None:
        notices = ReadNotice.decode_all(data)
        if notices is None:
            log.warning("ignored a malformed read notice")
            return
        for notice in notices:
            self.deliver(notice)

    def deliver(self, notice: ReadNotice) -> None:
        """`readUpdated` to the reader's sockets now; a receipt waits for its room's batch."""
        READ_NOTICES.labels(str(notice.receipt).lower()).inc()
        self._sockets.send_to_user(notice.user, READ_UPDATED_EVENT, notice.read_updated())
        if not notice.receipt or not self._sockets.holds_room(notice.room):
            return
        readers = self._pending[slot_of(notice.room)].setdefault(notice.room, {})
        readers[notice.user] = max(readers.get(notice.user, 0), notice.last_read)
        self._has_pending.set()

    async def _send_receipts_forever(self) -> None:
        """One `receipts` event per room with readers, at the room's slot of each window.

        Slot k of every window starts at k * batch_seconds / SLOTS past a multiple of
        batch_seconds on the clock, so two events of a room are always a whole number
        of windows apart, and a receipt waits at most one window.
        """
        width = self._batch_seconds / SLOTS
        while True:
            await self._has_pending.wait()
            now = time.monotonic()
            tick = math.floor(now / width) + 1  # the next slot to start
            await asyncio.sleep(tick * width - now)
            await self.flush(tick % SLOTS)

    async def flush(self, slot: int | None = None) -> None:
        """Send each room of `slot` (None: of every slot) with pending receipts one
        `receipts` event with all of its readers."""
        slots = range(SLOTS) if slot is None else [slot]
        rooms: list[tuple[str, dict[str, int]]] = []
        for k in slots:
            rooms += self._pending[k].items()
            self._pending[k] = {}
        for turn, (room, readers) in enumerate(rooms, start=1):
            if turn % ROOMS_PER_TURN == 0:
                # Hundreds of rooms' receipts at once would hold every message arriving
                # meanwhile: let them through between groups of rooms.
                await asyncio.sleep(0)
            event = {
                "room": room,
                "readers": [{"user": user, "lastRead": str(n)} for user, n in readers.items()],
            }
            try:
                if await self._sockets.send_to_room(room, RECEIPTS_EVENT, event):
                    RECEIPT_BATCHES.inc()
            except Exception:  # one room's failure must not stop the others' receipts
                log.exception("sending receipts failed", extra={"room": room})
        if not any(self._pending):
            self._has_pending.clear()
