"""Presence: who is online, decided in Redis from the per-user connection leases.

A user is online while at least one of their connections holds a lease in
`P:connections:<user>` (connections.py), on any replica, and for
`OFFLINE_GRACE_SECONDS` after their last one was released. Every transition is decided
by one Lua call that also publishes it, so each change is published exactly once
whichever replica made it:

* offline -> online: the admission (or the renewal) that gives a user who is not in
  `P:online` a lease;
* online -> offline: the periodic sweep, run by every replica each
  `PRESENCE_SWEEP_SECONDS`, finds the users whose time has come (`P:online` is scored
  by it: the expiry of their newest lease, renewals push it on, or the end of the grace
  a release started) and takes offline those that have no live lease left. Lua calls
  run one at a time, so when two replicas sweep at once, one takes a user offline and
  the other finds nothing left to do.

So a flapping connection or a page reload (a new lease within the grace) publishes
nothing, a second tab or device changes nothing, and the users of a replica that died
go offline when their leases lapse: within `CONNECTION_LEASE_SECONDS` of its last
renewal, plus one sweep.

The sweep runs often while users are going offline (every 0.1 s by default) because
each change it makes is a burst of `presence` events to the rooms of the user: swept
once a second, a second's worth of users going offline (100 under a churn of 100 a
second) reached a replica at once and kept its loop busy writing them for tens of
milliseconds, the longest stalls of the messages behind them (docs/PERFORMANCE.md).
A sweep that finds nobody due waits `QUIET_SWEEP_SECONDS` before the next: ten calls a
second on every replica would cost an idle one more than all of its pings.

A change goes out on `P:presence` with the user's rooms of at most
`PRESENCE_PUSH_MAX_MEMBERS` members (their sizes are kept by the relay,
redis_contract.py); each replica sends `presence` once to each of its connections in
any of those rooms (room_state.py). Bigger rooms, the global room among them, push
nothing per member: clients read `GET /rooms/{room}/presence`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from services.shared.presence import iso_time
from services.shared.redis_contract import RedisKeys
from services.shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PresenceConfig:
    """The gateway's presence settings (docs/CONFIGURATION.md)."""

    offline_grace_seconds: float = 5.0
    sweep_seconds: float = 0.1
    push_max_members: int = 100
    typing_max_members: int = 1000  # typing is not relayed in larger rooms (0: no cap)


# A Lua function the scripts below start with. It publishes one presence change of
# `user` on `channel`, with the user's rooms of at most `max_members` members (from the
# membership hash and the room sizes, named from `prefix` like the relay's script does).
# A room whose size is missing (the relay is rebuilding them) is left out. `seen` is
# epoch seconds as a string, as Redis gives a score back: cjson would round a number to
# 14 digits, and the time pushed would differ from the one the API reads.
PUBLISH_CHANGE = """
local function publish_change(prefix, channel, max_members, user, online, seen)
  local small = {}
  if max_members > 0 then
    local rooms = {}
    for _, room in ipairs(redis.call('HKEYS', prefix .. ':rooms:' .. user)) do
      if room ~= '@' then rooms[#rooms + 1] = room end
    end
    for first = 1, #rooms, 500 do
      local chunk = {unpack(rooms, first, math.min(first + 499, #rooms))}
      local sizes = redis.call('HMGET', prefix .. ':room-sizes', unpack(chunk))
      for i, size in ipairs(sizes) do
        if size and tonumber(size) <= max_members then small[#small + 1] = chunk[i] end
      end
    end
  end
  redis.call('PUBLISH', channel, cjson.encode(
    {user = user, online = online, lastSeen = seen, rooms = small}))
end
"""

# KEYS[1] the online set, KEYS[2] the last-seen set; ARGV: now, lease, most users per
# call, key prefix, channel, push max members. Takes the users whose time has come
# offline unless a lease of theirs is still live; returns how many users it looked at.
SWEEP = (
    PUBLISH_CHANGE
    + """
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[3])
for _, user in ipairs(due) do
  local leases = ARGV[4] .. ':connections:' .. user
  local newest = redis.call('ZRANGE', leases, -1, -1, 'WITHSCORES')
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  local live = redis.call('ZRANGE', leases, -1, -1, 'WITHSCORES')
  if #live > 0 then
    redis.call('ZADD', KEYS[1], live[2], user)
  else
    redis.call('ZREM', KEYS[1], user)
    -- A deleted account (revoked) leaves no last-seen time behind.
    local revoked = redis.call('EXISTS', ARGV[4] .. ':revoked:' .. user) == 1
    if revoked then
      redis.call('ZREM', KEYS[2], user)
    elseif #newest > 0 then
      redis.call('ZADD', KEYS[2], 'GT', tonumber(newest[2]) - lease, user)
    end
    local seen = (not revoked) and redis.call('ZSCORE', KEYS[2], user)
    publish_change(ARGV[4], ARGV[5], tonumber(ARGV[6]), user, false, seen or ARGV[1])
  end
end
return #due
"""
)
SWEEP_CHUNK = 1000
# After a sweep that found nobody due, or failed (Redis away), the next one waits at
# least this long: the cost of sweeping is then for nothing, and an outage would log a
# warning every `sweep_seconds`.
QUIET_SWEEP_SECONDS = 1.0


@dataclass(frozen=True)
class PresenceChange:
    """One change as published on `P:presence`."""

    user: str
    online: bool
    last_seen: float | None
    rooms: list[str]

    @classmethod
    def parse(cls, data: bytes | str) -> PresenceChange | None:
        """The change in a channel message; None for anything malformed."""
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("user"), str):
            return None
        rooms = raw.get("rooms")
        try:
            seen = float(raw["lastSeen"])
        except (KeyError, TypeError, ValueError):
            seen = None
        return cls(
            raw["user"],
            raw.get("online") is True,
            seen,
            # cjson encodes an empty list as an empty object.
            [room for room in rooms if isinstance(room, str)] if isinstance(rooms, list) else [],
        )

    def event(self) -> dict[str, Any]:
        """The `presence` event (docs/ROOM_STATE.md)."""
        return {"user": self.user, "online": self.online, "lastSeen": iso_time(self.last_seen)}


def change_args(keys: RedisKeys, config: PresenceConfig) -> list[str | int]:
    """The ARGV every script that may publish a change ends with: prefix, channel, max."""
    return [keys.prefix, keys.presence_channel, config.push_max_members]


class PresenceSweeper:
    """Every `sweep_seconds`, take offline the users whose leases lapsed or whose grace ended."""

    def __init__(
        self, redis: aioredis.Redis, keys: RedisKeys, config: PresenceConfig, lease_seconds: float
    ) -> None:
        self._keys = keys
        self._config = config
        self._lease = lease_seconds
        self._sweep = redis.register_script(SWEEP)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_forever(), name="presence-sweep")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _sweep_forever(self) -> None:
        busy = self._config.sweep_seconds
        quiet = max(busy, QUIET_SWEEP_SECONDS)
        pause = busy
        while True:
            await asyncio.sleep(pause)
            try:
                pause = busy if await self.sweep() else quiet
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: the next round sweeps
                log.warning("presence sweep failed", extra={"error": repr(exc)})
                pause = quiet

    async def sweep(self) -> int:
        """Look at every user whose time has come, a chunk per Lua call; how many there were."""
        keys = [self._keys.online, self._keys.last_seen]
        seen = 0
        while True:
            args = [time.time(), self._lease, SWEEP_CHUNK, *change_args(self._keys, self._config)]
            due = int(await self._sweep(keys=keys, args=args))
            seen += due
            if due < SWEEP_CHUNK:
                return seen
