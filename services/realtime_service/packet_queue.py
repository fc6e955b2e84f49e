"""A client's outgoing packet queue: asyncio.Queue's interface at a fraction of its size.

Every Engine.IO session owns a queue for as long as it is connected. An `asyncio.Queue`
costs about 3 KB even when empty (three deques and an Event with a fourth one), which
was a tenth of the gateway's memory per idle connection. This queue allocates its
storage only while it holds something, and tells an optional listener about each
packet put, so a WebSocket session can write packets as they come instead of keeping
a writer task parked on `get()`.

It is unbounded, like the queues python-engineio creates, and keeps their semantics
for `get`, `join` and `task_done`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol


class QueueListener(Protocol):
    def packet_queued(self) -> None:
        """Called after each put, once the packet is in the queue."""


class PacketQueue:
    """An unbounded FIFO with `asyncio.Queue`'s methods; storage exists only while non-empty."""

    __slots__ = ("_getters", "_items", "_joiners", "_unfinished", "listener")

    maxsize = 0

    def __init__(self, maxsize: int = 0) -> None:
        if maxsize:
            raise ValueError("PacketQueue is unbounded")
        self._items: deque[Any] | None = None
        self._unfinished = 0
        self._getters: list[asyncio.Future[None]] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        self.listener: QueueListener | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return False

    def put_nowait(self, item: Any) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        items.append(item)
        self._unfinished += 1
        self._wake_getter()
        if self.listener is not None:
            self.listener.packet_queued()

    async def put(self, item: Any) -> None:
        """Never waits: the queue has no bound (as asyncio.Queue(maxsize=0))."""
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None  # an idle client holds no deque
        return item

    async def get(self) -> Any:
        while not self._items:
            self._getters, getter = _enlist(self._getters)
            try:
                await getter
            except BaseException:
                getter.cancel()
                self._forget(getter)
                # Woken but cancelled before taking the item: pass the wake-up on.
                if self._items and not getter.cancelled():
                    self._wake_getter()
                raise
        return self.get_nowait()

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners:
            joiners, self._joiners = self._joiners, None
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        if self._unfinished == 0:
            return
        self._joiners, joiner = _enlist(self._joiners)
        try:
            await joiner
        finally:
            if self._joiners and joiner in self._joiners:
                self._joiners.remove(joiner)

    def _forget(self, getter: asyncio.Future[None]) -> None:
        getters = self._getters
        if getters and getter in getters:
            getters.remove(getter)
        if not getters:
            self._getters = None

    def _wake_getter(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break
        if not getters:
            self._getters = None


def _enlist(
    waiters: list[asyncio.Future[Any]] | None,
) -> tuple[list[asyncio.Future[Any]], asyncio.Future[Any]]:
    """A new future appended to `waiters`, which is created on first use (idle queues hold none)."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if waiters is None:
        waiters = []
    waiters.append(future)
    return waiters, future


def discard_queued(queue: Any) -> None:
    """Drop every packet still queued, each marked done, so that `join()` returns.

    For what can no longer be sent: a stalled client's backlog, a closed connection's.
    Works on any queue with `asyncio.Queue`'s interface.
    """
    while not queue.empty():
        queue.get_nowait()
        queue.task_done()
