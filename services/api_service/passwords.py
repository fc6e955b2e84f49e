"""Argon2id password hashing, run in worker threads, with a bounded queue.

Hashing costs tens of milliseconds of CPU by design; on the event loop it would stall
every other request and socket of the process. In threads it still competes for the
CPU: a burst of sign-ins (from addresses the per-address limit does not see together)
would queue without end and every sign-in, and the process, would slow down with it.
So at most `max_pending` hashes are running or waiting; beyond that a request is
refused at once with 503 and `Retry-After`, before any work is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.api_service.errors import ServiceBusy
from services.api_service.metrics import PASSWORD_HASHES_PENDING, PASSWORD_HASHES_REFUSED

T = TypeVar("T")
BUSY_MESSAGE = "Too many sign-ins at once, try again shortly"


class Passwords:
    """Hash and verify passwords off the event loop, `max_pending` at a time at most."""

    def __init__(
        self, workers: int = 4, max_pending: int = 16, retry_after_seconds: int = 1
    ) -> None:
        self._hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id, RFC 9106 low-memory
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._max_pending = max_pending
        self._retry_after = retry_after_seconds
        self._pending = 0
        # Verified against when the email is unknown, so both failures take the same time.
        self._dummy_hash = self._hasher.hash("not-a-real-password")

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; a missing hash still costs one verification."""
        return await self._run(
            lambda: self._verify_sync(
                password_hash or self._dummy_hash, password, password_hash is not None
            )
        )

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        """`work(*args)` in a worker thread, or 503 when `max_pending` are already queued.

        The slot is released when the thread's work ends (or is dropped unstarted), not
        when the awaiting request goes away, so an abandoned request cannot let more
        work in than the bound.
        """
        if self._pending >= self._max_pending:
            PASSWORD_HASHES_REFUSED.inc()
            raise ServiceBusy(BUSY_MESSAGE, retry_after=self._retry_after)
        loop = asyncio.get_running_loop()
        future: Future[T] = self._executor.submit(work, *args)
        self._acquire()
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(future)

    def _acquire(self) -> None:
        self._pending += 1
        PASSWORD_HASHES_PENDING.set(self._pending)

    def _release(self) -> None:
        self._pending -= 1
        PASSWORD_HASHES_PENDING.set(self._pending)

    def _verify_sync(self, password_hash: str, password: str, real: bool) -> bool:
        try:
            return self._hasher.verify(password_hash, password) and real
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._executor.shutdown(wait=True)
