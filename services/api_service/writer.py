"""Group commit for posted messages.

Every insert takes the lock of its room (see db/messages.py), so inserts into one room
are serialized across all API processes anyway. Instead of one transaction per
request, one writer task per process takes every message waiting at that moment and
stores them with one statement: one round trip and one commit (one WAL flush) for the
whole batch. Alone, a message is written at once; under load, batches grow by
themselves and throughput follows.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from services.api_service.db.messages import (
    NEW_MESSAGE_CHANNEL,
    InsertResult,
    NewMessage,
    Refused,
    insert_messages,
)
from services.api_service.db.pool import FairPool
from services.shared.messages import StoredMessage
from services.shared.tasks import cancel_and_wait

Pending = tuple[NewMessage, "asyncio.Future[InsertResult]"]


class LocalRelay(Protocol):
    """What the writer needs of the outbox relay in its own process (relay.py)."""

    @property
    def is_leader(self) -> bool: ...

    def committed(self, messages: list[StoredMessage]) -> None: ...


class MessageWriter:
    """Owns the task that writes queued messages in batches, `max_in_flight` at a time."""

    def __init__(
        self, pool: FairPool, relay: LocalRelay, max_batch: int = 256, max_in_flight: int = 2
    ) -> None:
        self._pool = pool
        self._relay = relay
        self._max_batch = max_batch
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="message-writer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        for write in list(self._writes):
            await cancel_and_wait(write)
        while not self._queue.empty():  # nothing may wait forever on a stopped writer
            _, future = self._queue.get_nowait()
            future.cancel()

    async def insert(self, message: NewMessage) -> InsertResult:
        """Store `message` (once per owner and client id) and return the stored row.

        Raises a `Refused` (db/messages.py) when its author has no account, is not a
        member of its room or the room is archived; nothing is stored then.
        """
        future: asyncio.Future[InsertResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((message, future))
        return await future

    async def _run(self) -> None:
        """Start a batch whenever a slot is free, with everything queued by then.

        Two batches in flight let one travel to PostgreSQL and back while the event loop
        answers the previous one and parses new requests; two that write to the same
        room still commit one after the other under its lock.
        """
        while True:
            await self._slots.acquire()
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [(m, f) for m, f in batch if not f.done()]  # callers gone (cancelled)
            if not batch:
                self._slots.release()
                continue
            write = asyncio.create_task(self._write(batch))
            self._writes.add(write)
            write.add_done_callback(self._written)

    def _written(self, write: asyncio.Task[None]) -> None:
        self._writes.discard(write)
        self._slots.release()

    async def _write(self, batch: list[Pending]) -> None:
        try:
            async with self._pool.acquire() as conn:
                # The relay of this process gets the rows in memory; only when it does
                # not lead must a NOTIFY wake the leader in another process.
                notify = None if self._relay.is_leader else NEW_MESSAGE_CHANNEL
                results = await insert_messages(conn, [message for message, _ in batch], notify)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - each waiting request gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Refused):
                future.set_exception(result)  # this request alone fails
            else:
                future.set_result(result)
        # After the answers: the callers' responses go out before the relay's publishing.
        created = sorted(
            (r.message for r in results if isinstance(r, InsertResult) and r.created),
            key=lambda m: m.id,
        )
        if created:
            self._relay.committed(created)
