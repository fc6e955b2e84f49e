"""Ephemeral room state reaching this replica's clients: presence changes and typing.

Both travel on channels of their own (redis_contract.py), outside the ordered stream of
messages and room events: nothing waits for the delivery lock, nothing is replayed,
and a change published while this replica was not subscribed (its Redis connection
dropping) is simply missed. That is their contract (docs/ROOM_STATE.md): typing expires
on its own, and a client reads presence over REST when it (re)connects.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import redis.asyncio as aioredis

from services.realtime_service.delivery import OrderedRedisManager
from services.realtime_service.metrics import PRESENCE_CHANGES, ROOM_STATE_DELIVERIES
from services.realtime_service.presence import PresenceChange
from services.realtime_service.subscriptions import ChannelSubscription
from services.shared.presence import PRESENCE_EVENT, TYPING_EVENT
from services.shared.redis_contract import RedisKeys

log = logging.getLogger(__name__)


class RoomStateListener:
    """Subscribe to the presence and typing channels and send each event to the local members."""

    def __init__(
        self, redis: aioredis.Redis, keys: RedisKeys, manager: OrderedRedisManager
    ) -> None:
        self._redis = redis
        self._presence = keys.presence_channel
        self._typing = keys.typing_channel
        self._manager = manager
        self._subscription = ChannelSubscription(
            redis, [self._presence, self._typing], "room-state", self._received
        )
        self.subscribed = self._subscription.subscribed

    def start(self) -> None:
        self._subscription.start()

    async def stop(self) -> None:
        await self._subscription.stop()

    async def _received(self, channel: str, data: bytes) -> None:
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
        """Send each `typing` event in a channel message (an array of them, or one) to the
        room's local members but the typist's own connections."""
        try:
            published = orjson.loads(data)
        except orjson.JSONDecodeError:
            published = None
        events = published if isinstance(published, list) else [published]
        sent = sum(self._typing_event(event) for event in events)
        ROOM_STATE_DELIVERIES.labels(TYPING_EVENT).inc(sent)
        return sent

    def _typing_event(self, event: Any) -> int:
        try:
            room, user_id = event["room"], event["user"]["id"]
        except (KeyError, TypeError):
            log.warning("malformed typing event ignored")
            return 0
        if not isinstance(room, str) or not isinstance(user_id, str):
            return 0
        return self._manager.send_to_rooms(TYPING_EVENT, event, [room], user_id)
