"""Ordered, gap-free delivery on top of python-socketio's Redis manager.

Stock `AsyncRedisManager` emits whatever arrives on the channel: a message published
while this gateway was re-subscribing is silently gone. This subclass keeps the
manager's protocol and API and adds, for packets from the outbox relay (they carry
`seq = {id, prev}`):

* duplicates (a relay retry, a Redis restart) are dropped by id;
* a gap (`prev` above the last id delivered here) is filled from the history stream
  before the new message goes out; if the stream no longer holds the gap, every local
  client is disconnected so it reconnects with `lastId` and is told to refetch;
* a periodic check catches up after a quiet period, when no later message would
  reveal the gap;
* clients that reconnect with `lastId` get the messages they missed, in order, before
  any live one, then a `recovered` event.

One lock serializes delivery, gap filling and recovery, so each client sees ids in
increasing order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio

from services.realtime_service.history import HistoryReader
from services.realtime_service.metrics import (
    FANOUT_DELIVERIES,
    FANOUT_MESSAGES,
    GAP_FILLS,
    RECOVERIES,
)
from services.shared.fanout import sequence_of
from services.shared.messages import NEW_MESSAGE_EVENT
from services.shared.metrics import REDIS_RECONNECTS

log = logging.getLogger(__name__)

RECOVERED_EVENT = "recovered"


class OrderedRedisManager(socketio.AsyncRedisManager):
    """`AsyncRedisManager` with gap detection, duplicate suppression and replay."""

    def __init__(self, url: str, channel: str, history: HistoryReader, gap_check_seconds: float) -> None:
        super().__init__(url, channel=channel)
        self._history = history
        self._gap_check_seconds = gap_check_seconds
        self._lock = asyncio.Lock()
        self._last_delivered = 0
        self._recovering: set[str] = set()
        # Clients that reconnected ahead of this gateway: skip ids they already have.
        self._floors: dict[str, int] = {}
        self._gap_task: asyncio.Task[None] | None = None
        self._subscribed_once = False

    @property
    def last_delivered(self) -> int:
        return self._last_delivered

    async def start(self) -> None:
        """Start from the stream's newest id and begin the periodic gap check."""
        self._last_delivered = await self._history.tail_id()
        self._gap_task = asyncio.create_task(self._check_gaps_forever(), name="gap-check")

    async def stop(self) -> None:
        if self._gap_task is not None:
            self._gap_task.cancel()
            try:
                await self._gap_task
            except asyncio.CancelledError:
                pass

    def _redis_connect(self) -> None:
        """Count re-subscriptions: each one may have missed messages (the gap check covers them)."""
        if self._subscribed_once:
            REDIS_RECONNECTS.labels("realtime", "subscriber").inc()
        self._subscribed_once = True
        super()._redis_connect()

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        seq = sequence_of(message)
        if seq is None:  # not from the relay: python-socketio's own behaviour
            await super()._handle_emit(message)
            return
        message_id, prev = seq
        async with self._lock:
            if message_id <= self._last_delivered:
                return
            if prev > self._last_delivered:
                await self._fill_gap(upto=prev)
            await self._deliver(message_id, message["data"][0])

    async def _fill_gap(self, upto: int) -> None:
        """Deliver what was missed up to `upto`, or reset clients when it is gone."""
        missed = await self._history.replay(self._last_delivered, upto)
        if missed is None:
            log.warning("history gap not recoverable; asking clients to reconnect",
                        extra={"after": self._last_delivered, "upto": upto})
            GAP_FILLS.labels("reset_clients").inc()
            await self._reconnect_all_clients()
            self._last_delivered = upto
            return
        GAP_FILLS.labels("filled").inc()
        log.info("filled a delivery gap", extra={"count": len(missed), "upto": upto})
        for entry in missed:
            await self._deliver(entry.id, entry.wire)

    async def _deliver(self, message_id: int, wire: dict[str, Any]) -> None:
        skip = list(self._recovering)
        for sid, floor in list(self._floors.items()):
            if message_id <= floor:
                skip.append(sid)
            else:
                del self._floors[sid]
        await self.emit(NEW_MESSAGE_EVENT, wire, namespace="/", skip_sid=skip, ignore_queue=True)
        self._last_delivered = message_id
        FANOUT_MESSAGES.inc()
        FANOUT_DELIVERIES.inc(max(0, len(self.rooms.get("/", {}).get(None, ())) - len(skip)))

    async def _check_gaps_forever(self) -> None:
        while True:
            await asyncio.sleep(self._gap_check_seconds)
            try:
                tail = await self._history.tail_id()
                if tail > self._last_delivered:
                    async with self._lock:
                        if tail > self._last_delivered:
                            await self._fill_gap(upto=tail)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: the next round retries
                log.warning("gap check failed", extra={"error": repr(exc)})

    async def _reconnect_all_clients(self) -> None:
        """Close every local Engine.IO session; clients reconnect and recover with lastId."""
        eio = self.server.eio
        for eio_sid in list(eio.sockets):
            await eio.disconnect(eio_sid)

    def begin_recovery(self, sid: str) -> None:
        """Hold live messages back from `sid` until `recover` has replayed what it missed."""
        self._recovering.add(sid)

    async def recover(self, sid: str, last_id: int) -> None:
        """Replay what `sid` missed after `last_id`, then tell it whether that was complete."""
        try:
            async with self._lock:
                missed = await self._history.replay(last_id, self._last_delivered)
                if missed is None:
                    RECOVERIES.labels("false").inc()
                    await self._emit_to(sid, RECOVERED_EVENT, {"recovered": False, "lastId": str(last_id)})
                    return
                for entry in missed:
                    await self._emit_to(sid, NEW_MESSAGE_EVENT, entry.wire)
                if last_id > self._last_delivered:
                    self._floors[sid] = last_id
                newest = max([last_id, *(entry.id for entry in missed)])
                RECOVERIES.labels("true").inc()
                await self._emit_to(sid, RECOVERED_EVENT, {"recovered": True, "lastId": str(newest)})
        except Exception:
            log.exception("recovery failed", extra={"sid": sid})
            await self._emit_to(sid, RECOVERED_EVENT, {"recovered": False, "lastId": str(last_id)})
        finally:
            self._recovering.discard(sid)

    def forget(self, sid: str) -> None:
        self._recovering.discard(sid)
        self._floors.pop(sid, None)

    async def _emit_to(self, sid: str, event: str, data: Any) -> None:
        await self.emit(event, data, namespace="/", room=sid, ignore_queue=True)
