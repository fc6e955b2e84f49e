"""Typing indicators: a member tells a room it is typing, its other members see it for a while.

A rooms-aware client emits `typing` `{"room"}`. The gateway checks the room against the
user's rooms as this replica delivers them (the same map live delivery uses, never
PostgreSQL), relays at most one event per connection, room and `RELAY_INTERVAL_SECONDS`
(3 s: half the indicator's 6 s life, so a typist shows continuously, and each member
receives a third of what a client sending every second would cost),
and publishes it on `P:typing`; every replica (this one included) sends it to the
room's members there but the typist's own connections (room_state.py). Nothing is
stored or replayed: the event carries `expiresIn`, after which clients stop showing it
unless another arrives. Each inbound event also counts against the connection's packet
budget (inbound.py), like any packet.

Typing is not relayed in rooms of more than `TYPING_MAX_MEMBERS` members, nor in the
global room (every account is a member): there one keystroke a second from each of a
few hundred writers would cost every replica a write per member per event, as much as
the messages themselves. The room's size is checked in Redis (`P:room-sizes`, kept by
the relay) in the same call that publishes.

A replica publishes the typing events of `LINGER_SECONDS` together: one script call and
one channel message (a JSON array) for all of them, each checked against its room's
size. Every replica is woken for each message on the channel, which costs it about as
much as a few deliveries; at one typist per room and second in 1,000 rooms that was
1,000 wake-ups a second on every replica. An indicator shows 20 ms later; the typist's
acknowledgement waits for the publish, and says whether its event went out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.realtime_service.metrics import TYPING_EVENTS
from services.shared.presence import TYPING_EXPIRES_MS
from services.shared.redis_contract import RedisKeys
from services.shared.rooms import is_global

log = logging.getLogger(__name__)

RELAY_INTERVAL_SECONDS = 3.0
# Rooms a connection's last relay time is kept for before the stale ones are dropped.
REMEMBERED_ROOMS = 32

RELAYED = "relayed"
RATE_LIMITED = "rate_limited"
NOT_MEMBER = "not_member"
INVALID = "invalid"
UNAVAILABLE = "unavailable"
ROOM_TOO_LARGE = "room_too_large"

LINGER_SECONDS = 0.02

# KEYS[1] the room sizes; ARGV: the most members (0: no cap), channel, then room and
# event (JSON) of each event. Publishes the events of rooms no larger than the cap as
# one JSON array; returns, per event, 1 published or 0 the room is larger.
PUBLISH_SMALL_ONES = """
local most = tonumber(ARGV[1])
local events, verdicts = {}, {}
for i = 3, #ARGV, 2 do
  local size = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if most > 0 and size > most then
    verdicts[#verdicts + 1] = 0
  else
    verdicts[#verdicts + 1] = 1
    events[#events + 1] = ARGV[i + 1]
  end
end
if #events > 0 then
  redis.call('PUBLISH', ARGV[2], '[' .. table.concat(events, ',') .. ']')
end
return verdicts
"""

RoomsOf = Callable[[str], "list[str] | None"]
Spawn = Callable[..., "asyncio.Task[Any]"]


class _Batch:
    """The typing events waiting for the next publish, and its verdicts once made."""

    __slots__ = ("args", "verdicts")

    def __init__(self) -> None:
        self.args: list[str | bytes] = []  # room, event, room, event...
        self.verdicts: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()


class TypingRelay:
    """Check, rate-limit and publish the `typing` events of this replica's connections."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: RedisKeys,
        rooms_of: RoomsOf,
        max_members: int = 1000,
        spawn: Spawn | None = None,
    ) -> None:
        self._redis = redis
        self._typing_channel = keys.typing_channel
        self._sizes = keys.room_sizes
        self._max_members = max_members
        self._publish = redis.register_script(PUBLISH_SMALL_ONES)
        # Starts the publish of a batch (the server's background tasks, cancelled at exit).
        self._spawn: Spawn = spawn or asyncio.ensure_future
        self._batch: _Batch | None = None
        self._rooms_of = rooms_of
        self._who: dict[str, dict[str, str]] = {}  # sid -> {"id", "name"}, rooms-aware only
        self._relayed: dict[str, dict[str, float]] = {}  # sid -> room -> when last relayed

    def connected(self, sid: str, user_id: str, name: str) -> None:
        """A rooms-aware connection was admitted: it may type in its user's rooms."""
        self._who[sid] = {"id": user_id, "name": name}

    def forget(self, sid: str) -> None:
        self._who.pop(sid, None)
        self._relayed.pop(sid, None)

    async def typed(self, sid: str, data: Any) -> dict[str, Any]:
        """Handle one `typing` event; what the client is acknowledged with, if it asked."""
        room = data.get("room") if isinstance(data, dict) else None
        if not isinstance(room, str):
            return _refused(INVALID)
        who = self._who.get(sid)
        rooms = self._rooms_of(sid)
        if who is None or rooms is None or room not in rooms:
            return _refused(NOT_MEMBER)
        if is_global(room) and self._max_members > 0:
            return _refused(ROOM_TOO_LARGE)
        if not self._take_turn(sid, room):
            return _refused(RATE_LIMITED)
        event = {"room": room, "user": who, "expiresIn": TYPING_EXPIRES_MS}
        try:
            published = await self._publish_soon(room, orjson.dumps(event))
        except RedisError as exc:
            log.warning("typing not relayed", extra={"error": repr(exc)})
            return _refused(UNAVAILABLE)
        if not published:
            return _refused(ROOM_TOO_LARGE)
        TYPING_EVENTS.labels(RELAYED).inc()
        return {"ok": True}

    async def _publish_soon(self, room: str, event: bytes) -> bool:
        """Publish `event` with the others of this linger; False if its room is too large."""
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch()
            self._spawn(self._publish_after_linger(batch))
        index = len(batch.args) // 2
        batch.args += [room, event]
        verdicts = await asyncio.shield(batch.verdicts)
        return bool(verdicts[index])

    async def _publish_after_linger(self, batch: _Batch) -> None:
        try:
            await asyncio.sleep(LINGER_SECONDS)
            self._batch = None
            verdicts = await self._publish(
                keys=[self._sizes], args=[self._max_members, self._typing_channel, *batch.args]
            )
            batch.verdicts.set_result([int(v) for v in verdicts])
        except BaseException as exc:  # the typists waiting on it are told, whatever happened
            if self._batch is batch:
                self._batch = None
            failure = exc if isinstance(exc, RedisError) else RedisError(repr(exc))
            if not batch.verdicts.done():
                batch.verdicts.set_exception(failure)
                batch.verdicts.exception()  # retrieved: nobody may be waiting any more
            if not isinstance(exc, Exception):
                raise

    def _take_turn(self, sid: str, room: str) -> bool:
        """True at most once per RELAY_INTERVAL_SECONDS for this connection and room."""
        now = time.monotonic()
        relayed = self._relayed.setdefault(sid, {})
        if now - relayed.get(room, -RELAY_INTERVAL_SECONDS) < RELAY_INTERVAL_SECONDS:
            return False
        if len(relayed) >= REMEMBERED_ROOMS:
            for stale in [r for r, at in relayed.items() if now - at >= RELAY_INTERVAL_SECONDS]:
                del relayed[stale]
        relayed[room] = now
        return True


def _refused(outcome: str) -> dict[str, Any]:
    TYPING_EVENTS.labels(outcome).inc()
    return {"error": outcome}
