"""Announcing moved read markers to the gateways, best effort (services/shared/read_state.py).

The marker is committed in PostgreSQL before it is announced, so a notice lost while
Redis is away loses nothing a client cannot read over REST (`GET /rooms`,
`GET /rooms/{room}/receipts`): the request that moved it still succeeds. While Redis
does not answer, notices are not even tried for `retry_seconds` after a failure, so an
unreachable Redis costs one request at most `timeout_seconds`, not every one of them.
The switch is logged once each way and every dropped notice is counted.

The notices of `linger_seconds` go out together, one channel message (a JSON array)
for all of them: every gateway is woken for each message on the channel, which costs
it about as much as a few deliveries, and at one marker per message read that would be
as many wake-ups as messages. Each request still waits for its notice's publish and
learns whether it went out.
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
        linger_seconds: float = 0.01,
    ) -> None:
        self._redis = redis
        self._reads_channel = keys.reads_channel
        self._timeout_seconds = timeout_seconds
        self._retry = retry_seconds
        self._linger = linger_seconds
        self._away_until: float | None = None  # monotonic; None while Redis answers
        # The notices waiting for the next publish, and what it will tell their requests.
        self._held: list[ReadNotice] = []
        self._outcome: asyncio.Future[bool] | None = None
        self._senders: set[asyncio.Task[None]] = set()

    async def publish(self, notice: ReadNotice) -> bool:
        """Publish `notice` with the others of its linger; False (counted) when dropped."""
        if self._away_until is not None and time.monotonic() < self._away_until:
            READ_NOTICES_DROPPED.inc()
            return False
        outcome = self._outcome
        if outcome is None:
            outcome = self._outcome = asyncio.get_running_loop().create_future()
            sender = asyncio.create_task(self._send_after_linger(outcome))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        self._held.append(notice)
        return await asyncio.shield(outcome)

    async def _send_after_linger(self, outcome: asyncio.Future[bool]) -> None:
        sent = False
        try:
            await asyncio.sleep(self._linger)
            notices, self._held, self._outcome = self._held, [], None
            sent = await self._publish_now(notices)
            if not sent:
                READ_NOTICES_DROPPED.inc(len(notices))
        finally:  # the requests waiting on it are told, whatever happened
            if self._outcome is outcome:
                self._held, self._outcome = [], None
            outcome.set_result(sent)

    async def _publish_now(self, notices: list[ReadNotice]) -> bool:
        """One channel message with `notices`; False (logged on the first failure) if not sent."""
        try:
            async with asyncio.timeout(self._timeout_seconds):
                await self._redis.publish(self._reads_channel, ReadNotice.encode_all(notices))
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            if self._away_until is None:
                log.warning(
                    "read notices: Redis unreachable, markers are kept in PostgreSQL only",
                    extra={"error": repr(exc)},
                )
            self._away_until = time.monotonic() + self._retry
            return False
        if self._away_until is not None:
            log.info("read notices: Redis answers again")
            self._away_until = None
        return True
