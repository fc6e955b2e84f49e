"""Announcing moved read markers to the gateways, best effort (services/shared/read_state.py).

The marker is committed in PostgreSQL before it is announced, so a notice lost while
Redis is away loses nothing a client cannot read over REST (`GET /rooms`,
`GET /rooms/{room}/receipts`): the request that moved it still succeeds. While Redis
does not answer, notices are not even tried for `retry_seconds` after a failure, so an
unreachable Redis costs one request at most `timeout_seconds`, not every one of them.
The switch is logged once each way and every dropped notice is counted.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
import redis.exceptions

from services.api_service.metrics import READ_NOTICES_DROPPED
from services.shared.read_state import ReadNotice
from services.shared.redis_contract import RedisKeys

log = logging.getLogger(__name__)


class ReadNotices:
    """Publishes `ReadNotice`s on the reads channel."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: RedisKeys,
        timeout_seconds: float = 0.5,
        retry_seconds: float = 2.0,
    ) -> None:
        self._redis = redis
        self._reads_channel = keys.reads_channel
        self._timeout_seconds = timeout_seconds
        self._retry = retry_seconds
        self._away_until: float | None = None  # monotonic; None while Redis answers

    async def publish(self, notice: ReadNotice) -> bool:
        """Publish `notice`; False (logged on the first failure, counted) when it was dropped."""
        if self._away_until is not None and time.monotonic() < self._away_until:
            READ_NOTICES_DROPPED.inc()
            return False
        try:
            async with asyncio.timeout(self._timeout_seconds):
                await self._redis.publish(self._reads_channel, notice.encode())
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            if self._away_until is None:
                log.warning(
                    "read notices: Redis unreachable, markers are kept in PostgreSQL only",
                    extra={"error": repr(exc)},
                )
            self._away_until = time.monotonic() + self._retry
            READ_NOTICES_DROPPED.inc()
            return False
        if self._away_until is not None:
            log.info("read notices: Redis answers again")
            self._away_until = None
        return True
