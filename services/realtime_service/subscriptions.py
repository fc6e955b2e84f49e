"""The gateway's own Redis channels: subscribe, hand every message on, subscribe again.

Besides python-socketio's manager channel, a replica listens on channels of its own:
revocations (revocations.py), read notices (reads.py), presence and typing
(room_state.py). Each keeps one subscription alive the same way: on any error (Redis
restarting, the connection dropped) it subscribes again after a pause that grows with
the failures in a row (`RETRY_SECONDS`) and is short again once a subscription holds.
A message published while no subscription stood is missed; `on_subscribed` runs after
each (re)subscription for a listener that must make up for that (revocations sweep).

Messages that arrive together are read from the connection's buffer without a pause,
so a burst (the presence sweep publishes the changes of every user it takes offline,
one message each) would hold the event loop, and every delivery of the replica's
messages behind it, for as long as it takes. The listener lets the loop run once
every `YIELD_AFTER_SECONDS` of handling.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from services.shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
YIELD_AFTER_SECONDS = 0.002

# (channel, data) of one message; the channel decoded, the data as Redis sent it.
OnMessage = Callable[[str, bytes], Awaitable[None]]
OnSubscribed = Callable[[], Awaitable[None]]


class ChannelSubscription:
    """One task that keeps `channels` subscribed and awaits `on_message` for each message."""

    def __init__(
        self,
        redis: aioredis.Redis,
        channels: list[str],
        name: str,
        on_message: OnMessage,
        on_subscribed: OnSubscribed | None = None,
    ) -> None:
        self._redis = redis
        self._channels = channels
        self._name = name
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self._failures = 0  # subscription losses in a row (picks the retry pause)

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name=self._name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: subscribe again after a pause
                self.subscribed.clear()
                delay = RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS) - 1)]
                self._failures += 1
                log.warning(
                    "subscription lost",
                    extra={"channels": self._name, "error": repr(exc), "retry_in": delay},
                )
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(*self._channels)
            self.subscribed.set()
            self._failures = 0  # subscribed again: the next loss retries at once
            if self._on_subscribed is not None:
                await self._on_subscribed()
            since = time.perf_counter()
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                channel = message.get("channel")
                data = message.get("data")
                await self._on_message(
                    channel.decode() if isinstance(channel, bytes) else str(channel),
                    data if isinstance(data, bytes) else str(data or "").encode(),
                )
                if time.perf_counter() - since > YIELD_AFTER_SECONDS:
                    await asyncio.sleep(0)  # let deliveries waiting behind this burst go
                    since = time.perf_counter()
