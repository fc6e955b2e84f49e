"""Argon2id password hashing, run in worker threads.

Hashing costs tens of milliseconds of CPU by design; on the event loop it would stall
every other request and socket of the process.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """Hash and verify passwords off the event loop."""

    def __init__(self, max_workers: int = 4) -> None:
        self._hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id, RFC 9106 low-memory
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="argon2")
        # Verified against when the email is unknown, so both failures take the same time.
        self._dummy_hash = self._hasher.hash("not-a-real-password")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; a missing hash still costs one verification."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._verify_sync, password_hash or self._dummy_hash, password,
            password_hash is not None,
        )

    def _verify_sync(self, password_hash: str, password: str, real: bool) -> bool:
        try:
            return self._hasher.verify(password_hash, password) and real
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._executor.shutdown(wait=True)
