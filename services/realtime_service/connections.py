"""Per-user connection leases in Redis, shared by every gateway replica: the cap and presence.

Each user has a sorted set in Redis of their connection ids, scored by a lease expiry.
Replicas renew the leases of their live connections; a replica that dies without
cleaning up stops renewing, and its entries lapse after one lease instead of counting
against the user forever. Every connection holds a lease, capped or not: presence is
made of them (presence.py), and the same Lua calls that admit, release and renew a
lease decide the user's presence transitions.

Renewal is one Lua call per `RENEW_CHUNK` connections. As a redis-py pipeline of two
commands per connection, renewing 2,500 connections kept a replica's event loop busy for
hundreds of milliseconds every `lease / 3` on a slow 2-core machine (packing 5,000
commands and parsing 5,000 replies in Python), and every broadcast waited behind it.
A chunk's connections travel as one argument, "sid user sid user ...", that the script
splits and names the keys from (as the sweep does): redis-py encodes one string per
call instead of three per connection, which was most of an idle replica's renewal cost.
A renewal also gives back a lease Redis no longer holds (Redis lost its data, or this
replica stalled for longer than a lease), so presence comes back with it; a connection
released while its renewal is in flight is released again after it, so a renewal never
revives a closed connection.

The same admission script refuses a revoked user (services/shared/redis_contract.py), so a
connect stays one Redis round trip; the replica also keeps which of its connections
belong to which user, so that a revocation can drop them at once (revocations.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.realtime_service.presence import PUBLISH_CHANGE, PresenceConfig, change_args
from services.realtime_service.rooms import NO_MEMBERSHIPS, Memberships
from services.shared.redis_contract import RedisKeys
from services.shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# KEYS[1] the user's set, KEYS[2] the user's revocation mark, KEYS[3] the online set, and
# for a rooms-aware client KEYS[4] the user's membership hash and KEYS[5] the relay's
# memberships mark; ARGV: now, expiry, cap (0 = none), connection id, key ttl ms, user id,
# then prefix, presence channel, push max members. Returns {1} admitted (rooms-aware:
# {1, HGETALL of the hash, the mark or false}), {0} at the cap, {-1} revoked. A user
# who was not online is now, and that is published.
ADMIT = (
    PUBLISH_CHANGE
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if tonumber(ARGV[3]) > 0 and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return {0}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if redis.call('ZSCORE', KEYS[3], ARGV[6]) then
  redis.call('ZADD', KEYS[3], 'GT', ARGV[2], ARGV[6])
else
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[6])
  publish_change(ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[6], true, ARGV[1])
end
if #KEYS < 5 then return {1} end
return {1, redis.call('HGETALL', KEYS[4]), redis.call('GET', KEYS[5])}
"""
)

# KEYS[1] the user's membership hash, KEYS[2] the relay's memberships mark: read again
# while the mark is missing (the relay is rebuilding the hashes).
MEMBERSHIPS = """
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2])}
"""
# How often a connecting client's membership hash is read again while the mark is missing.
MEMBERSHIPS_RETRY_SECONDS = 0.1


# How long a connecting client waits for the cap and revocation check before it is
# admitted unchecked (well inside the connect deadline, CONNECT_TIMEOUT_SECONDS).
ADMIT_TIMEOUT_SECONDS = 2.0


class Admission(Enum):
    """What `UserConnections.admit` decided."""

    ADMITTED = 1
    AT_CAP = 0
    REVOKED = -1


@dataclass(frozen=True)
class Admitted:
    """An admission's decision and, for a rooms-aware client, the user's memberships."""

    decision: Admission
    memberships: Memberships | None = None


# KEYS[1] the online set, KEYS[2] the last-seen set, KEYS[3] the user's set;
# ARGV: now, connection id, user id, grace seconds. The user was seen now; once their
# last live lease is gone, their grace starts (the sweep takes them offline after it).
RELEASE = """
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[2], 'GT', ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[3]) == 0 and redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[4]), ARGV[3])
end
"""

# KEYS[1] the online set; ARGV: now, expiry, key ttl ms, prefix, presence channel, push
# max members, then the connections as one string of space-separated pairs "sid user"
# (`renewal_pairs`). Each lease is extended, or given back if Redis lost it; a user
# missing from the online set is online again (published). Returns how many it renewed.
RENEW = (
    PUBLISH_CHANGE
    + """
local renewed = 0
for sid, user in string.gmatch(ARGV[7], '(%S+) (%S+)') do
  local leases = ARGV[4] .. ':connections:' .. user
  redis.call('ZADD', leases, ARGV[2], sid)
  redis.call('PEXPIRE', leases, ARGV[3])
  local due = redis.call('ZSCORE', KEYS[1], user)
  if not due then
    redis.call('ZADD', KEYS[1], ARGV[2], user)
    publish_change(ARGV[4], ARGV[5], tonumber(ARGV[6]), user, true, ARGV[1])
  elseif tonumber(due) < tonumber(ARGV[2]) then
    redis.call('ZADD', KEYS[1], ARGV[2], user)
  end
  renewed = renewed + 1
end
return renewed
"""
)
RENEW_CHUNK = 100


def renewal_pairs(connections: list[tuple[str, str]]) -> str:
    """The connections of one renewal call as RENEW reads them: "sid user sid user ...".

    Socket.IO sids are base64url and user ids are UUIDs (services/shared/auth.py), so
    neither holds a space; an id that did would shift every pair after it, so it is
    refused at admission (`admission`).
    """
    return " ".join(f"{sid} {user_id}" for sid, user_id in connections)


def _renewable(identifier: str) -> bool:
    """Whether an id can travel in `renewal_pairs` (not empty, no whitespace)."""
    return bool(identifier) and not any(char.isspace() for char in identifier)


class UserConnections:
    """Admit, release and renew connection leases: the cap (0 = none), revocations, presence."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: RedisKeys,
        cap: int,
        lease_seconds: float,
        presence: PresenceConfig | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._cap = cap
        self._lease = lease_seconds
        self._presence = presence or PresenceConfig()
        # A user's set outlives its newest lease by one more: gone once nobody renews it.
        self._key_ttl_ms = int(lease_seconds * 2000)
        self._admit = redis.register_script(ADMIT)
        self._memberships = redis.register_script(MEMBERSHIPS)
        self._release = redis.register_script(RELEASE)
        self._renew_leases = redis.register_script(RENEW)
        self._local: dict[str, str] = {}  # sid -> user id, connections on this replica
        self._by_user: dict[str, set[str]] = {}  # user id -> sids, the same connections
        # The connections of the renewal call in flight, and those released meanwhile
        # (released in Redis once it returned, so that it cannot revive them).
        self._renewing: frozenset[str] = frozenset()
        self._released_while_renewing: list[tuple[str, str]] = []
        self._task: asyncio.Task[None] | None = None

    def _key(self, user_id: str) -> str:
        return self._keys.connections(user_id)

    async def admit(self, user_id: str, sid: str) -> Admission:
        """Record the connection unless the user is revoked or at the cap (see `admission`)."""
        return (await self.admission(user_id, sid)).decision

    async def admission(
        self, user_id: str, sid: str, rooms: bool = False, delivered: int = 0
    ) -> Admitted:
        """Record the connection unless the user is revoked or at the cap.

        For a rooms-aware client (`rooms`) the same round trip reads the user's
        memberships. They count as complete when the relay's memberships mark is at
        least `delivered` (the newest entry this replica delivered): a mark that is
        missing, or behind (Redis restored an older snapshot), means the relay is about
        to rebuild the hashes, and the hash may hold memberships since revoked. They
        are read again until the mark is back, within the same ADMIT_TIMEOUT_SECONDS;
        then the client is admitted with whatever the hash holds (and it is logged).

        While Redis is unreachable the connection is admitted, uncounted and unchecked
        for revocation (and in the global room only): the cap, the revocation mark
        and the memberships all live in Redis, and locking every user out while it is
        away would turn a Redis outage into a full outage. A Redis that does not answer
        at all counts as unreachable after ADMIT_TIMEOUT_SECONDS (the client's own Redis
        connection has no command timeout: the revocations subscription shares it). The
        window is small in practice: a revocation is only announced while Redis is up
        (the API refuses to delete an account otherwise), every replica drops the
        user's sockets when it is, and a replica re-checks its users each time its
        subscription to the revocations channel is re-established (revocations.py).
        """
        if not (_renewable(user_id) and _renewable(sid)):
            raise ValueError(f"ids must be non-empty, without spaces: {user_id!r}, {sid!r}")
        now = time.time()
        deadline = asyncio.get_running_loop().time() + ADMIT_TIMEOUT_SECONDS
        keys = [self._key(user_id), self._keys.revoked(user_id), self._keys.online]
        if rooms:
            keys += [self._keys.user_rooms(user_id), self._keys.memberships_applied]
        args: list[Any] = [now, now + self._lease, self._cap, sid, self._key_ttl_ms, user_id]
        try:
            async with asyncio.timeout_at(deadline):
                reply = await self._admit(
                    keys=keys, args=[*args, *change_args(self._keys, self._presence)]
                )
            admitted = Admitted(Admission(int(reply[0])), _memberships(reply[1:], delivered))
        except (RedisError, TimeoutError) as exc:
            log.warning(
                "connection cap and revocation check unavailable, admitting",
                extra={"error": repr(exc)},
            )
            admitted = Admitted(Admission.ADMITTED, NO_MEMBERSHIPS if rooms else None)
        if admitted.decision is not Admission.ADMITTED:
            return admitted
        self._local[sid] = user_id
        self._by_user.setdefault(user_id, set()).add(sid)
        read = admitted.memberships
        if read is not None and read is not NO_MEMBERSHIPS and not read.complete:
            read = await self._memberships_when_marked(user_id, read, deadline, delivered)
            admitted = Admitted(Admission.ADMITTED, read)
        return admitted

    async def _memberships_when_marked(
        self, user_id: str, memberships: Memberships, deadline: float, delivered: int
    ) -> Memberships:
        """Read the user's memberships again until the relay's mark is back, or the deadline."""
        keys = [self._keys.user_rooms(user_id), self._keys.memberships_applied]
        loop = asyncio.get_running_loop()
        while not memberships.complete and loop.time() + MEMBERSHIPS_RETRY_SECONDS < deadline:
            await asyncio.sleep(MEMBERSHIPS_RETRY_SECONDS)
            try:
                async with asyncio.timeout_at(deadline):
                    reply = await self._memberships(keys=keys)
            except (RedisError, TimeoutError) as exc:
                log.warning("membership read failed", extra={"error": repr(exc)})
                break
            memberships = _memberships(reply, delivered) or memberships
        if not memberships.complete:
            log.warning(
                "memberships not marked applied (relay rebuilding them); admitting with the hash"
                " as it is",
                extra={"user_id": user_id, "rooms": len(memberships.rooms)},
            )
        return memberships

    async def memberships_now(self, user_id: str, delivered: int) -> Memberships:
        """One read of the user's memberships (raises RedisError while Redis is away)."""
        keys = [self._keys.user_rooms(user_id), self._keys.memberships_applied]
        async with asyncio.timeout(ADMIT_TIMEOUT_SECONDS):
            reply = await self._memberships(keys=keys)
        return _memberships(reply, delivered) or NO_MEMBERSHIPS

    def sids_of(self, user_id: str) -> list[str]:
        """The connections `user_id` holds on this replica."""
        return list(self._by_user.get(user_id, ()))

    def users(self) -> list[str]:
        """Every user with a connection on this replica."""
        return list(self._by_user)

    async def release(self, sid: str) -> None:
        """Forget the connection and release its lease (the last one starts the user's grace)."""
        user_id = self._local.pop(sid, None)
        if user_id is None:
            return
        sids = self._by_user.get(user_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._by_user[user_id]
        if sid in self._renewing:
            self._released_while_renewing.append((sid, user_id))
            return
        await self._release_lease(sid, user_id)

    async def _release_lease(self, sid: str, user_id: str) -> None:
        keys = [self._keys.online, self._keys.last_seen, self._key(user_id)]
        try:
            await self._release(
                keys=keys, args=[time.time(), sid, user_id, self._presence.offline_grace_seconds]
            )
        except RedisError as exc:  # the lease lapses on its own
            log.warning("connection release failed", extra={"error": repr(exc)})

    def start(self) -> None:
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
        connections = list(self._local.items())
        for start in range(0, len(connections), RENEW_CHUNK):
            # Released while an earlier chunk was renewed: not revived.
            chunk = [c for c in connections[start : start + RENEW_CHUNK] if c[0] in self._local]
            if not chunk:
                continue
            now = time.time()
            args: list[Any] = [now, now + self._lease, self._key_ttl_ms]
            args += [*change_args(self._keys, self._presence), renewal_pairs(chunk)]
            self._renewing = frozenset(sid for sid, _ in chunk)
            try:
                await self._renew_leases(keys=[self._keys.online], args=args)
            finally:
                self._renewing = frozenset()
                released, self._released_while_renewing = self._released_while_renewing, []
                for sid, user_id in released:
                    await self._release_lease(sid, user_id)


def _memberships(reply: list[Any], delivered: int) -> Memberships | None:
    """The memberships in a script reply `[HGETALL as a flat list, the mark]`, if any.

    Complete when the mark exists and is not behind `delivered` (redis-py gives a
    missing mark, Lua's false, as None).
    """
    if len(reply) < 2:
        return None
    flat = [item.decode() if isinstance(item, bytes) else str(item) for item in reply[0]]
    fields = dict(zip(flat[0::2], flat[1::2], strict=True))
    mark = reply[1]
    complete = mark is not None and int(mark) >= delivered
    return Memberships.from_hash(fields, complete=complete)
