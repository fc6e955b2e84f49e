"""Ephemeral room state reaching this replica's clients: presence changes and typing.

Both travel on channels of their own (redis_contract.py), outside the ordered stream of
messages and room events: nothing waits for the delivery lock, nothing is replayed,
and a change published while this replica was not subscribed (its Redis connection
dropping) is simply missed. That is their contract (docs/ROOM_STATE.md): typing expires
on its own, and a client reads presence over REST when it (re)connects.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import redis.asyncio as aioredis

from services.realtime_service.delivery import OrderedRedisManager
from services.realtime_service.metrics import PRESENCE_CHANGES, ROOM_STATE_DELIVERIES
from services.realtime_service.presence import PresenceChange
from services.shared.presence import PRESENCE_EVENT, TYPING_EVENT
from services.shared.redis_contract import RedisKeys
from services.shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


class RoomStateListener:
    """Subscribe to the presence and typing channels and send each event to the local members."""

    def __init__(
        self, redis: aioredis.Redis, keys: RedisKeys, manager: OrderedRedisManager
    ) -> None:
        self._redis = redis
        self._presence = keys.presence_channel
        self._typing = keys.typing_channel
        self._manager = manager
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self._failures = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="room-state")

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
                    "room state subscription lost", extra={"error": repr(exc), "retry_in": delay}
                )
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self._presence, self._typing)
            self.subscribed.set()
            self._failures = 0
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                channel = message.get("channel")
                channel = channel.decode() if isinstance(channel, bytes) else channel
                data = message.get("data")
                if channel == self._presence:
                    self.presence_changed(data)
                elif channel == self._typing:
                    self.typing(data)

    def presence_changed(self, data: bytes) -> int:
        """Send `presence` to the local connections that share a small room with the user."""
        change = PresenceChange.parse(data)
        if change is None:
            log.warning("malformed presence change ignored")
            return 0
        PRESENCE_CHANGES.labels("true" if change.online else "false").inc()
        event = change.event()
        sent = self._manager.send_to_rooms(PRESENCE_EVENT, event, change.rooms, change.user)
        ROOM_STATE_DELIVERIES.labels(PRESENCE_EVENT).inc(sent)
        return sent

    def typing(self, data: bytes) -> int:
        """Send `typing` to the room's local members but the typist's own connections."""
        try:
            event = orjson.loads(data)
            room, user_id = event["room"], event["user"]["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("malformed typing event ignored")
            return 0
        if not isinstance(room, str) or not isinstance(user_id, str):
            return 0
        sent = self._manager.send_to_rooms(TYPING_EVENT, event, [room], user_id)
        ROOM_STATE_DELIVERIES.labels(TYPING_EVENT).inc(sent)
        return sent
