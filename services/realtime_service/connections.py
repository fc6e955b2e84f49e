"""A cap on simultaneous connections per user, shared by every gateway replica.

Each user has a sorted set in Redis of their connection ids, scored by a lease expiry.
Replicas renew the leases of their live connections; a replica that dies without
cleaning up stops renewing, and its entries lapse after one lease instead of counting
against the user forever.

Renewal is one Lua call per `RENEW_CHUNK` connections. As a redis-py pipeline of two
commands per connection, renewing 2,500 connections kept a replica's event loop busy for
hundreds of milliseconds every `lease / 3` on a slow 2-core machine (packing 5,000
commands and parsing 5,000 replies in Python), and every broadcast waited behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# KEYS[1] the user's set; ARGV: now, expiry, cap, connection id, key ttl ms
ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS: one user's set per connection; ARGV: expiry, key ttl ms, then the connection ids
# in the order of KEYS. Only leases still present are extended (ZADD XX): a connection
# its lease already lost is not counted again.
RENEW = """
for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, 'XX', ARGV[1], ARGV[i + 2])
    redis.call('PEXPIRE', key, ARGV[2])
end
return #KEYS
"""
RENEW_CHUNK = 500


class UserConnections:
    """Admit, release and renew connections against a per-user cap (0 = no cap)."""

    def __init__(self, redis: aioredis.Redis, key_prefix: str, cap: int, lease_seconds: float) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._cap = cap
        self._lease = lease_seconds
        # A user's set outlives its newest lease by one more: gone once nobody renews it.
        self._key_ttl_ms = int(lease_seconds * 2000)
        self._admit = redis.register_script(ADMIT)
        self._renew_leases = redis.register_script(RENEW)
        self._local: dict[str, str] = {}  # sid -> user id, connections on this replica
        self._task: asyncio.Task[None] | None = None

    def _key(self, user_id: str) -> str:
        return f"{self._prefix}:{user_id}"

    async def admit(self, user_id: str, sid: str) -> bool:
        """Record the connection unless the user is at the cap."""
        if self._cap <= 0:
            return True
        now = time.time()
        try:
            admitted = await self._admit(
                keys=[self._key(user_id)],
                args=[now, now + self._lease, self._cap, sid, self._key_ttl_ms],
            )
        except RedisError as exc:
            # The cap is a guard against abuse, not a reason to lock everyone out
            # while Redis is away: admit, uncounted.
            log.warning("connection cap unavailable, admitting", extra={"error": repr(exc)})
            return True
        if admitted:
            self._local[sid] = user_id
        return bool(admitted)

    async def release(self, sid: str) -> None:
        user_id = self._local.pop(sid, None)
        if user_id is None:
            return
        try:
            await self._redis.zrem(self._key(user_id), sid)
        except RedisError as exc:  # the lease lapses on its own
            log.warning("connection release failed", extra={"error": repr(exc)})

    def start(self) -> None:
        if self._cap > 0:
            self._task = asyncio.create_task(self._renew_forever(), name="connection-leases")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self._renew()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: leases are renewed next round
                log.warning("connection lease renewal failed", extra={"error": repr(exc)})

    async def _renew(self) -> None:
        """Extend the lease of every connection on this replica, a chunk per call."""
        expiry = time.time() + self._lease
        connections = list(self._local.items())
        for start in range(0, len(connections), RENEW_CHUNK):
            chunk = connections[start:start + RENEW_CHUNK]
            await self._renew_leases(
                keys=[self._key(user_id) for _, user_id in chunk],
                args=[expiry, self._key_ttl_ms, *(sid for sid, _ in chunk)],
            )
