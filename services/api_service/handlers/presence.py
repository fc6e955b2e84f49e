"""`GET /rooms/{room}/presence`: who of a room's members is online (docs/ROOM_STATE.md).

The gateways keep presence in Redis (services/shared/redis_contract.py); this route only
reads it. A page of members comes from PostgreSQL like the members list, and its
presence from two ZMSCOREs. The online count of a room is the number of its members in
`P:online`: the global room's members are every account, so its count is the size of
that set. Another room's member ids come from PostgreSQL as one string and are counted
inside Redis by a Lua call per `COUNT_CHUNK` ids: no object, argument or reply per
member in this process (as ZMSCORE arguments, packing and parsing 20,000 ids cost
40 to 100 ms on the test machine; this way the count takes 15 to 30 ms).
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from services.api_service import validation
from services.api_service.db import rooms as db
from services.api_service.db.rooms import MemberRow
from services.api_service.errors import Unavailable
from services.api_service.handlers.common import authenticate, limit_by_user
from services.api_service.handlers.rooms import check_member, member_page_query, room_param
from services.api_service.keys import DB_POOL, REDIS, SETTINGS
from services.shared.presence import iso_time
from services.shared.redis_contract import RedisKeys
from services.shared.rooms import is_global
from services.shared.web import json_response

# KEYS[1] the online set; ARGV[1] user ids of 36 characters each, one after the other.
# How many of them are online.
COUNT_ONLINE = """
local ids, online = ARGV[1], 0
for i = 1, #ids, 36 do
  if redis.call('ZSCORE', KEYS[1], string.sub(ids, i, i + 35)) then online = online + 1 end
end
return online
"""
UUID_CHARS = 36
COUNT_CHUNK = 5000  # ids per Lua call: each holds Redis for a few milliseconds at most


async def room_presence(request: web.Request) -> web.Response:
    """The room's online count and a page of its members with their presence."""
    identity = authenticate(request)
    await limit_by_user(request, "room_reads", identity)
    room_id = room_param(request)
    limit, after = member_page_query(request)
    async with request.app[DB_POOL].acquire() as conn:
        check_member(
            await db.room(conn, room_id), await db.role_of(conn, room_id, identity.user_id)
        )
        page, last = await db.member_page(conn, room_id, limit=limit, after=after)
        everyone = None if is_global(room_id) else await db.packed_member_ids(conn, room_id)
    keys = request.app[SETTINGS].common.redis_keys
    redis = request.app[REDIS]
    try:
        members = await page_presence(redis, keys, page)
        online = await online_count(redis, keys, everyone)
    except RedisError:
        raise Unavailable(
            "Presence is unavailable right now, try again later", retry_after=1
        ) from None
    return json_response(
        {
            "online": online,
            "members": members,
            "next": None if last is None else validation.encode_cursor(list(last)),
        }
    )


async def page_presence(
    redis: aioredis.Redis, keys: RedisKeys, page: list[MemberRow]
) -> list[dict[str, object]]:
    """Each member of `page` with whether they are online and when they were last seen."""
    if not page:
        return []
    ids = [member.id for member in page]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zmscore(keys.online, ids)
        pipe.zmscore(keys.last_seen, ids)
        online, seen = await pipe.execute()
    now = time.time()
    return [
        {
            "id": member.id,
            "name": member.name,
            "online": is_online is not None,
            "lastSeen": iso_time(now if is_online is not None else last_seen),
        }
        for member, is_online, last_seen in zip(page, online, seen, strict=True)
    ]


async def online_count(redis: aioredis.Redis, keys: RedisKeys, packed: str | None) -> int:
    """How many of the `packed` ids are online; None: every account (the global room)."""
    if packed is None:
        return int(await redis.zcard(keys.online))
    count = redis.register_script(COUNT_ONLINE)
    online = 0
    step = COUNT_CHUNK * UUID_CHARS
    for start in range(0, len(packed), step):
        online += int(await count(keys=[keys.online], args=[packed[start : start + step]]))
    return online
