"""A cap on simultaneous connections per user, shared by every gateway replica.

Each user has a sorted set in Redis of their connection ids, scored by a lease expiry.
Replicas renew the leases of their live connections; a replica that dies without
cleaning up stops renewing, and its entries lapse after one lease instead of counting
against the user forever.

Renewal is one Lua call per `RENEW_CHUNK` connections. As a redis-py pipeline of two
commands per connection, renewing 2,500 connections kept a replica's event loop busy for
hundreds of milliseconds every `lease / 3` on a slow 2-core machine (packing 5,000
commands and parsing 5,000 replies in Python), and every broadcast waited behind it.

The same admission script refuses a revoked user (services/shared/redis_contract.py), so a
connect stays one Redis round trip; the replica also keeps which of its connections
belong to which user, so that a revocation can drop them at once (revocations.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from enum import Enum

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.shared.redis_contract import RedisKeys
from services.shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# KEYS[1] the user's set, KEYS[2] the user's revocation mark; ARGV: now, expiry, cap
# (0 = none: only the revocation is checked), connection id, key ttl ms.
# Returns 1 admitted, 0 at the cap, -1 revoked.
ADMIT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if tonumber(ARGV[3]) <= 0 then return 1 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


# How long a connecting client waits for the cap and revocation check before it is
# admitted unchecked (well inside the connect deadline, CONNECT_TIMEOUT_SECONDS).
ADMIT_TIMEOUT_SECONDS = 2.0


class Admission(Enum):
    """What `UserConnections.admit` decided."""

    ADMITTED = 1
    AT_CAP = 0
    REVOKED = -1


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
    """Admit, release and renew connections against a per-user cap (0 = no cap) and revocations."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: RedisKeys,
        cap: int,
        lease_seconds: float,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._cap = cap
        self._lease = lease_seconds
        # A user's set outlives its newest lease by one more: gone once nobody renews it.
        self._key_ttl_ms = int(lease_seconds * 2000)
        self._admit = redis.register_script(ADMIT)
        self._renew_leases = redis.register_script(RENEW)
        self._local: dict[str, str] = {}  # sid -> user id, connections on this replica
        self._by_user: dict[str, set[str]] = {}  # user id -> sids, the same connections
        self._task: asyncio.Task[None] | None = None

    def _key(self, user_id: str) -> str:
        return self._keys.connections(user_id)

    async def admit(self, user_id: str, sid: str) -> Admission:
        """Record the connection unless the user is revoked or at the cap.

        While Redis is unreachable the connection is admitted, uncounted and unchecked
        for revocation: the cap and the revocation mark both live in Redis, and locking
        every user out while it is away would turn a Redis outage into a full outage.
        A Redis that does not answer at all counts as unreachable after
        ADMIT_TIMEOUT_SECONDS (the client's own Redis connection has no command timeout:
        the revocations subscription shares it). The window is small in practice: a
        revocation is only announced while Redis is up (the API refuses to delete an
        account otherwise), every replica drops the
        user's sockets when it is, and a replica re-checks its users each time its
        subscription to the revocations channel is re-established (revocations.py).
        """
        now = time.time()
        try:
            async with asyncio.timeout(ADMIT_TIMEOUT_SECONDS):
                decision = Admission(
                    int(
                        await self._admit(
                            keys=[self._key(user_id), self._keys.revoked(user_id)],
                            args=[now, now + self._lease, self._cap, sid, self._key_ttl_ms],
                        )
                    )
                )
        except (RedisError, TimeoutError) as exc:
            log.warning(
                "connection cap and revocation check unavailable, admitting",
                extra={"error": repr(exc)},
            )
            decision = Admission.ADMITTED
        if decision is Admission.ADMITTED:
            self._local[sid] = user_id
            self._by_user.setdefault(user_id, set()).add(sid)
        return decision

    def sids_of(self, user_id: str) -> list[str]:
        """The connections `user_id` holds on this replica."""
        return list(self._by_user.get(user_id, ()))

    def users(self) -> list[str]:
        """Every user with a connection on this replica."""
        return list(self._by_user)

    async def release(self, sid: str) -> None:
        user_id = self._local.pop(sid, None)
        if user_id is None:
            return
        sids = self._by_user.get(user_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._by_user[user_id]
        if self._cap <= 0:
            return  # nothing was recorded in Redis
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
            chunk = connections[start : start + RENEW_CHUNK]
            await self._renew_leases(
                keys=[self._key(user_id) for _, user_id in chunk],
                args=[expiry, self._key_ttl_ms, *(sid for sid, _ in chunk)],
            )
