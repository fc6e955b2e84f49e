"""Dropping a revoked user's live sockets on this replica, as soon as it is announced.

The API announces a revocation (an account deleted) on the revocations channel
(services/shared/redis_contract.py). Every replica listens and disconnects that user's
sockets with a Socket.IO DISCONNECT, which clients treat as final: a revoked user is
not meant to come back, and a reconnect would be refused anyway (connections.py checks
the revocation mark at admission).

A message published while this replica was not subscribed (Redis restarting, the
subscription re-established) would be lost, so each (re)subscription is followed by a
sweep: every user connected here is checked against the revocation marks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from services.realtime_service.connections import UserConnections
from services.realtime_service.metrics import REVOKED_DISCONNECTS
from services.realtime_service.subscriptions import ChannelSubscription
from services.shared.redis_contract import RedisKeys

log = logging.getLogger(__name__)

SWEEP_CHUNK = 500

Disconnect = Callable[[str], Awaitable[None]]


class RevocationListener:
    """Subscribe to the revocations channel and drop the named user's sockets here."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: RedisKeys,
        connections: UserConnections,
        disconnect: Disconnect,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._connections = connections
        self._disconnect = disconnect
        self._subscription = ChannelSubscription(
            redis,
            [keys.revocations_channel],
            "revocations",
            self._announced,
            on_subscribed=self._sweep,
        )
        self.subscribed = self._subscription.subscribed

    def start(self) -> None:
        self._subscription.start()

    async def stop(self) -> None:
        await self._subscription.stop()

    async def _announced(self, _channel: str, data: bytes) -> None:
        await self.drop_user(data.decode("utf-8", "replace"))

    async def _sweep(self) -> None:
        """Drop the users connected here whose revocation mark exists (missed announcements)."""
        users = self._connections.users()
        for start in range(0, len(users), SWEEP_CHUNK):
            chunk = users[start : start + SWEEP_CHUNK]
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in chunk:
                    pipe.exists(self._keys.revoked(user_id))
                marks = await pipe.execute()
            for user_id, revoked in zip(chunk, marks, strict=True):
                if revoked:
                    await self.drop_user(user_id)

    async def drop_user(self, user_id: str) -> None:
        """Disconnect every socket `user_id` holds on this replica."""
        sids = self._connections.sids_of(user_id)
        if not sids:
            return
        log.info(
            "dropping a revoked user's sockets", extra={"user_id": user_id, "sockets": len(sids)}
        )
        for sid in sids:
            REVOKED_DISCONNECTS.inc()
            try:
                await self._disconnect(sid)
            except Exception as exc:  # noqa: BLE001 - one socket's failure must not spare the others
                log.warning(
                    "revoked socket disconnect failed", extra={"sid": sid, "error": repr(exc)}
                )
