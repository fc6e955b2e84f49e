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

Each room has a window of its own, opened by its first receipt after its previous
event. One window for every room would send all rooms' receipts in the same instant,
once a second: with 250 rooms of receipts per replica that burst was what most
delayed the messages behind it. The rooms whose windows end within `GROUP_SECONDS`
of each other go out together, a few each time.

Markers are ephemeral: they are not in the message order (no ordering lock, no
replay). A notice published while this replica was not subscribed (Redis restarting)
is lost; clients read the markers over REST when they connect, and the next marker
that moves brings them up to date. Markers only move forward, so a client keeps the
greatest `lastRead` it has seen of each reader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
# Windows that end within this much of the first due one are sent with it.
GROUP_SECONDS = 0.05


@dataclass
class ReceiptWindow:
    """One room's pending receipts: when its window opened, each reader's newest marker."""

    opened: float
    readers: dict[str, int] = field(default_factory=dict)


class Sockets(Protocol):
    """What this module needs of the delivery manager (delivery.OrderedRedisManager)."""

    def send_to_user(self, user_id: str, event: str, data: Any) -> int: ...

    def holds_room(self, room: str) -> bool: ...

    async def send_to_room(self, room: str, event: str, data: Any) -> int: ...


class ReadNoticeListener:
    """Subscribe to the reads channel; pass markers on at once and receipts in batches."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: RedisKeys,
        sockets: Sockets,
        batch_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._reads_channel = keys.reads_channel
        self._sockets = sockets
        self._batch_seconds = batch_seconds
        self._clock = clock
        self._pending: dict[str, ReceiptWindow] = {}  # in the order the windows opened
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
        window = self._pending.get(notice.room)
        if window is None:
            window = self._pending[notice.room] = ReceiptWindow(self._clock())
            self._has_pending.set()
        readers = window.readers
        readers[notice.user] = max(readers.get(notice.user, 0), notice.last_read)

    async def _send_receipts_forever(self) -> None:
        """One `receipts` event per room with readers, every `batch_seconds` at most.

        A room's window opens with its first receipt after its previous event, so two
        events of a room are always at least `batch_seconds` apart, and a receipt
        waits at most that long plus `GROUP_SECONDS`.
        """
        while True:
            await self._has_pending.wait()
            first = next(iter(self._pending.values()))
            due_in = first.opened + self._batch_seconds + GROUP_SECONDS - self._clock()
            if due_in > 0:
                await asyncio.sleep(due_in)
            await self.flush(due_only=True)

    async def flush(self, *, due_only: bool = False) -> None:
        """Send each room with pending receipts one `receipts` event with all of its readers.

        With `due_only`, only the rooms whose window is over.
        """
        cutoff = self._clock() - self._batch_seconds
        rooms: list[str] = []
        for room, window in self._pending.items():  # oldest window first
            if due_only and window.opened > cutoff:
                break
            rooms.append(room)
        for turn, room in enumerate(rooms, start=1):
            if turn % ROOMS_PER_TURN == 0:
                # Hundreds of rooms' receipts at once would hold every message arriving
                # meanwhile: let them through between groups of rooms.
                await asyncio.sleep(0)
            if room not in self._pending:
                continue
            window = self._pending.pop(room)
            event = {
                "room": room,
                "readers": [
                    {"user": user, "lastRead": str(n)} for user, n in window.readers.items()
                ],
            }
            try:
                if await self._sockets.send_to_room(room, RECEIPTS_EVENT, event):
                    RECEIPT_BATCHES.inc()
            except Exception:  # one room's failure must not stop the others' receipts
                log.exception("sending receipts failed", extra={"room": room})
        if not self._pending:
            self._has_pending.clear()
