"""Rate limits shared by every API process through Redis.

Sliding-window counters from the `limits` library: per user for posting messages, per
client address for sign-in and sign-up (credential stuffing, account spam). A refusal
is a 429 with `Retry-After` in seconds.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from services.api_service.errors import TooManyRequests
from services.api_service.metrics import RATE_LIMITED


class RateLimits:
    """The API's limits; a limit of 0 disables it."""

    def __init__(self, redis_url: str, key_prefix: str, messages_per_minute: int, auth_per_minute: int) -> None:
        self._storage = RedisStorage(
            _async_uri(redis_url), implementation="redispy", key_prefix=key_prefix
        )
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._limits: dict[str, RateLimitItem | None] = {
            "messages": RateLimitItemPerMinute(messages_per_minute) if messages_per_minute else None,
            "auth": RateLimitItemPerMinute(auth_per_minute) if auth_per_minute else None,
        }

    async def check(self, limit_name: str, key: str) -> None:
        """Count one request against `limit_name` for `key`; raise 429 when over it."""
        item = self._limits[limit_name]
        if item is None:
            return
        if await self._limiter.hit(item, limit_name, key):
            return
        stats = await self._limiter.get_window_stats(item, limit_name, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        RATE_LIMITED.labels(limit_name).inc()
        raise TooManyRequests("Too many requests, slow down", retry_after=retry_after)


def _async_uri(redis_url: str) -> str:
    """`limits` picks its async storage from the scheme: redis:// → async+redis://."""
    return redis_url if redis_url.startswith("async+") else f"async+{redis_url}"

