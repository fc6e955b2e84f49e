"""Rate limits shared by every API process through Redis, kept in memory while Redis is away.

Sliding-window counters from the `limits` library: per user for posting messages and
reading history, per client address for sign-in and sign-up (credential stuffing,
account spam). A refusal is a 429 with `Retry-After` in seconds.

Posting needs only PostgreSQL (the outbox relay publishes once Redis is back), so a
Redis outage must not turn the limits into 500s. When the Redis storage fails, this
process counts in its own memory (`limits`' MemoryStorage: the same limits, per process
instead of shared) and tries Redis again every `retry_seconds`. The switch is logged
once each way and counted in `chat_rate_limit_fallback_total`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.api_service.errors import TooManyRequests
from services.api_service.metrics import RATE_LIMIT_FALLBACK, RATE_LIMIT_IN_MEMORY, RATE_LIMITED
from services.shared.config import Secret

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RedisLimitsConfig:
    """How the limiter talks to Redis.

    `timeout_seconds` bounds a connect and a command, so an unreachable (not refusing)
    Redis costs a request at most that long, once per `retry_seconds`. One retry
    without back-off replaces a connection that went stale when Redis restarted.
    """

    url: Secret
    key_prefix: str
    timeout_seconds: float = 0.5
    retry_seconds: float = 2.0


class RateLimits:
    """The API's limits (per minute, by name); a limit of 0 disables it."""

    def __init__(self, config: RedisLimitsConfig, per_minute: Mapping[str, int]) -> None:
        self._pool = aioredis.ConnectionPool.from_url(
            config.url.value,
            socket_connect_timeout=config.timeout_seconds,
            socket_timeout=config.timeout_seconds,
            retry=Retry(NoBackoff(), retries=1),
        )
        storage = RedisStorage(
            _async_uri(config.url.value),
            wrap_exceptions=True,
            implementation="redispy",
            key_prefix=config.key_prefix,
            # limits documents connection_pool but annotates **options as scalars only
            connection_pool=self._pool,  # type: ignore[arg-type]
        )
        self._shared = SlidingWindowCounterRateLimiter(storage)
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._retry_seconds = config.retry_seconds
        self._redis_away_until: float | None = None  # monotonic; None while Redis answers
        self._limits: dict[str, RateLimitItem | None] = {
            name: RateLimitItemPerMinute(amount) if amount else None
            for name, amount in per_minute.items()
        }

    async def check(self, limit_name: str, key: str, cost: int = 1) -> None:
        """Count `cost` against `limit_name` for `key`; raise 429 when over it."""
        item = self._limits[limit_name]
        if item is None:
            return
        allowed, reset_time = await self._hit(item, limit_name, key, cost)
        if allowed:
            return
        RATE_LIMITED.labels(limit_name).inc()
        retry_after = max(1, math.ceil(reset_time - time.time()))
        raise TooManyRequests("Too many requests, slow down", retry_after=retry_after)

    @property
    def in_memory(self) -> bool:
        """True while Redis is away and limits are counted in this process."""
        return self._redis_away_until is not None

    async def close(self) -> None:
        await self._pool.aclose()

    async def _hit(self, item: RateLimitItem, name: str, key: str, cost: int) -> tuple[bool, float]:
        """(allowed, when the window resets) from Redis, or from memory while it is away."""
        if self._redis_away_until is None or time.monotonic() >= self._redis_away_until:
            try:
                result = await _hit_with(self._shared, item, name, key, cost)
            except StorageError as exc:
                self._redis_failed(exc)
            else:
                self._redis_answered()
                return result
        RATE_LIMIT_FALLBACK.inc()
        return await _hit_with(self._local, item, name, key, cost)

    def _redis_failed(self, exc: StorageError) -> None:
        if self._redis_away_until is None:
            log.warning(
                "rate limits: Redis unreachable, counting in this process's memory",
                extra={"error": repr(exc.storage_error)},
            )
            RATE_LIMIT_IN_MEMORY.set(1)
        self._redis_away_until = time.monotonic() + self._retry_seconds

    def _redis_answered(self) -> None:
        if self._redis_away_until is not None:
            log.warning("rate limits: Redis is back, counting in Redis again")
            RATE_LIMIT_IN_MEMORY.set(0)
            self._redis_away_until = None


async def _hit_with(
    limiter: SlidingWindowCounterRateLimiter, item: RateLimitItem, name: str, key: str, cost: int
) -> tuple[bool, float]:
    if await limiter.hit(item, name, key, cost=cost):
        return True, 0.0
    stats = await limiter.get_window_stats(item, name, key)
    return False, stats.reset_time


def _async_uri(redis_url: str) -> str:
    """`limits` picks its async storage from the scheme: redis:// → async+redis://."""
    return redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
