"""A bound on how many requests of one kind a process serves at once.

Some reads are cheap to ask for and dear to answer (a 500-message history page is a
database query and hundreds of kilobytes of JSON held until the client has read it).
A bulkhead lets `max_running` of them run, queues `max_waiting` more, and refuses the
rest at once with 503 and `Retry-After`, so a burst cannot take every database
connection or pile up response bodies in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.typedefs import Handler

from services.api_service.errors import ServiceBusy
from services.api_service.metrics import BULKHEAD_REFUSED


class Bulkhead:
    """`max_running` at once, `max_waiting` queued, the rest refused (503)."""

    def __init__(
        self, name: str, max_running: int, max_waiting: int, retry_after_seconds: int = 1
    ) -> None:
        self._name = name
        self._slots = asyncio.Semaphore(max_running)
        self._max_waiting = max_waiting
        self._waiting = 0
        self._retry_after = retry_after_seconds

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked():
            if self._waiting >= self._max_waiting:
                BULKHEAD_REFUSED.labels(self._name).inc()
                raise ServiceBusy(
                    "Too many requests at once, try again shortly", retry_after=self._retry_after
                )
            self._waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    def bound(self, handler: Handler) -> Handler:
        """`handler`, run inside a slot."""

        async def bounded(request: web.Request) -> web.StreamResponse:
            async with self.slot():
                return await handler(request)

        return bounded
