"""Presence and typing end to end: two gateway replicas, real clients, REST (docs/ROOM_STATE.md).

The module runs its own stack with short leases, sweeps and grace (so a replica's death
shows within seconds) and a small `PRESENCE_PUSH_MAX_MEMBERS` (so a "big" room has five
members). Presence changes and typing travel on channels of their own, each in publish
order, so "nothing else arrived" is checked behind a fence of the same kind: a
presence change (or a typing event) that the observer receives after anything the
step under test published.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from services.shared.redis_contract import RedisKeys
from tests.helpers.limits import WAIT
from tests.helpers.metrics import scrape, total
from tests.helpers.rest import (
    GLOBAL_ROOM,
    Api,
    User,
    create_room,
    new_user,
    open_direct,
    rest_session,
    room_call,
)
from tests.helpers.sockets import ChatSocket, Open, socket_opener
from tests.helpers.stack import ChatStack, local_chat_stack

pytestmark = pytest.mark.timeout(240)

LEASE = 4.0
SWEEP = 0.5
GRACE = 2.0
PUSH_MAX = 4
STATE_ENV = {
    "CONNECTION_LEASE_SECONDS": str(LEASE),
    "PRESENCE_SWEEP_SECONDS": str(SWEEP),
    "OFFLINE_GRACE_SECONDS": str(GRACE),
    "PRESENCE_PUSH_MAX_MEMBERS": str(PUSH_MAX),
    "TYPING_MAX_MEMBERS": str(PUSH_MAX),
    **{
        name: "0"
        for name in (
            "RATE_LIMIT_AUTH_PER_MINUTE",
            "RATE_LIMIT_MESSAGES_PER_MINUTE",
            "RATE_LIMIT_ROOMS_CREATED_PER_MINUTE",
            "RATE_LIMIT_INVITES_PER_MINUTE",
        )
    },
}
# How late a pushed event may reach a client after Redis published it (delivery, a
# busy shared machine); the bounds under test are seconds.
DELIVERY_SLACK = 1.5


@pytest.fixture(scope="module")
async def state_stack() -> AsyncIterator[ChatStack]:
    async with local_chat_stack("room-state", STATE_ENV) as stack:
        yield stack


@pytest.fixture(scope="module")
async def api(state_stack: ChatStack) -> AsyncIterator[Api]:
    async with rest_session() as http:
        yield Api(http, state_stack.api_url)


@pytest.fixture
async def open_socket(state_stack: ChatStack, api: Api) -> AsyncIterator[Open]:
    async with socket_opener(state_stack.gateway_urls, api) as open_:
        yield open_


def keys_of(stack: ChatStack) -> RedisKeys:
    return RedisKeys(stack.channel)


async def direct_room(api: Api, a: User, b: User, watcher: ChatSocket) -> str:
    """The direct room of `a` and `b`, once `watcher` (a socket of one of them) has it."""
    reply = await open_direct(api, a, b)
    assert reply.status in (200, 201), (reply.status, reply.text)
    room = str(reply.body["id"])
    await watcher.wait_event("roomJoined", lambda d: d["room"]["id"] == room)
    return room


async def close_and_release(
    redis: aioredis.Redis, keys: RedisKeys, user: User, sock: ChatSocket
) -> None:
    """Close `sock` and wait until its gateway has released its lease in Redis."""
    sid = sock.sio.get_sid("/")
    await sock.close()
    deadline = time.monotonic() + WAIT
    while await redis.zscore(keys.connections(user.id), sid) is not None:
        assert time.monotonic() < deadline, f"the lease of {sock.name} was never released"
        await asyncio.sleep(0.05)  # wait-ok: polling Redis with a deadline


def about(user: User, online: bool | None = None) -> Callable[[Any], bool]:
    return lambda d: d["user"] == user.id and (online is None or d["online"] is online)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def presence_of(api: Api, user: User, room: str, **params: str | int) -> dict[str, Any]:
    reply = await room_call(api, user, "GET", f"/rooms/{room}/presence", **params)
    assert reply.status == 200, (reply.status, reply.text)
    return dict(reply.body)


# ---- presence ----------------------------------------------------------------------------------


async def test_a_peer_on_the_other_replica_sees_online_then_offline_after_the_grace(
    api: Api, open_socket: Open, state_stack: ChatStack, redis_client: aioredis.Redis
) -> None:
    ann, bob = await new_user(api), await new_user(api)
    b = await open_socket(bob, 1)
    room = await direct_room(api, ann, bob, b)

    a = await open_socket(ann, 0)
    online = await b.wait_ephemeral("presence", about(ann, True))
    assert set(online) == {"user", "online", "lastSeen"}
    assert abs(epoch(online["lastSeen"]) - time.time()) < 5
    reply = await presence_of(api, bob, room)
    assert reply["online"] == 2 and reply["next"] is None
    assert {(m["id"], m["name"], m["online"]) for m in reply["members"]} == {
        (ann.id, ann.name, True),
        (bob.id, bob.name, True),
    }

    closed_at = time.time()
    await a.close()
    offline = await b.wait_ephemeral("presence", about(ann, False))
    took = time.time() - closed_at
    assert GRACE * 0.9 <= took <= GRACE + SWEEP + DELIVERY_SLACK, took
    assert closed_at - 1 <= epoch(offline["lastSeen"]) <= closed_at + 1
    assert a.received("presence") == [], "nobody is told about themselves"
    reply = await presence_of(api, bob, room)
    assert reply["online"] == 1
    ann_entry = next(m for m in reply["members"] if m["id"] == ann.id)
    assert ann_entry["online"] is False and ann_entry["lastSeen"] == offline["lastSeen"]
    assert [d["online"] for d in b.received("presence", about(ann))] == [True, False]


async def test_two_tabs_are_one_user_and_closing_one_or_reloading_sends_nothing(
    api: Api, open_socket: Open, state_stack: ChatStack, redis_client: aioredis.Redis
) -> None:
    keys = keys_of(state_stack)
    ann, bob, fen = await new_user(api), await new_user(api), await new_user(api)
    b = await open_socket(bob, 1)
    await direct_room(api, ann, bob, b)
    await direct_room(api, fen, bob, b)

    tab1 = await open_socket(ann, 0, name="tab1")
    await b.wait_ephemeral("presence", about(ann, True))
    tab2 = await open_socket(ann, 1, name="tab2")
    await close_and_release(redis_client, keys, ann, tab1)
    # A reload: the last tab closes and the page connects again within the grace.
    await close_and_release(redis_client, keys, ann, tab2)
    # The fence goes offline after ann's grace would have ended: its `offline` comes after
    # anything about ann that the sweeps published up to then.
    fence = await open_socket(fen, 0, name="fence")
    await b.wait_ephemeral("presence", about(fen, True))
    await open_socket(ann, 0, name="reloaded")
    await fence.close()
    await b.wait_ephemeral("presence", about(fen, False))

    assert [d["online"] for d in b.received("presence", about(ann))] == [True]
    assert await redis_client.zscore(keys.online, ann.id) is not None


async def test_a_room_bigger_than_the_push_limit_pushes_nothing_but_counts_over_rest(
    api: Api, open_socket: Open, state_stack: ChatStack
) -> None:
    owner, fen = await new_user(api), await new_user(api)
    members = [await new_user(api) for _ in range(PUSH_MAX)]  # the room has PUSH_MAX + 1
    o = await open_socket(owner, 0)
    room = (await create_room(api, owner, kind="public", members=tuple(members)))["id"]
    await o.wait_event("roomJoined", lambda d: d["room"]["id"] == room)
    await direct_room(api, fen, owner, o)

    await open_socket(members[0], 1)
    await open_socket(members[1], 0)
    await open_socket(fen, 1, name="fence")
    await o.wait_ephemeral("presence", about(fen, True))
    assert [d["user"] for d in o.received("presence")] == [fen.id], "nothing from the big room"

    first = await presence_of(api, owner, room, limit=2)
    assert first["online"] == 3 and first["next"] is not None
    pages = [first]
    while pages[-1]["next"] is not None:
        pages.append(await presence_of(api, owner, room, limit=2, cursor=pages[-1]["next"]))
    listed = {m["id"]: m["online"] for page in pages for m in page["members"]}
    assert listed == {
        owner.id: True,
        members[0].id: True,
        members[1].id: True,
        **{m.id: False for m in members[2:]},
    }
    assert all(page["online"] == 3 for page in pages)

    everyone = await presence_of(api, owner, GLOBAL_ROOM, limit=1)
    assert everyone["online"] >= 4  # these four at least; other tests' users may be online
    outsider = await new_user(api)
    reply = await room_call(api, outsider, "GET", f"/rooms/{room}/presence")
    assert reply.status == 403 and reply.body["code"] == "not_member"
    private = (await create_room(api, owner, kind="private"))["id"]
    reply = await room_call(api, outsider, "GET", f"/rooms/{private}/presence")
    assert reply.status == 404 and reply.body["code"] == "not_found"


async def test_the_online_count_of_a_20000_member_room_is_read_in_one_request(
    api: Api, state_stack: ChatStack, redis_client: aioredis.Redis
) -> None:
    keys = keys_of(state_stack)
    owner = await new_user(api)
    room = (await create_room(api, owner, kind="public"))["id"]
    run = uuid.uuid4().hex[:8]
    conn = await asyncpg.connect(state_stack.database_url)
    try:
        ids = [
            str(row["id"])
            for row in await conn.fetch(
                "INSERT INTO users (name, email, password_hash)"
                " SELECT 'Bulk ' || g, 'bulk-' || g || '-' || $1 || '@example.com', 'x'"
                " FROM generate_series(1, 19999) g RETURNING id",
                run,
            )
        ]
        await conn.execute(
            "INSERT INTO room_members (room_id, user_id, role)"
            " SELECT $1::uuid, u, 'member' FROM unnest($2::uuid[]) u",
            room,
            ids,
        )
    finally:
        await conn.close()
    online = ids[::4]  # 5,000 of them, as a gateway would mark them (due an hour from now)
    await redis_client.zadd(keys.online, dict.fromkeys(online, time.time() + 3600))
    try:
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            reply = await presence_of(api, owner, room, limit=50)
            timings.append((time.perf_counter() - started) * 1000)
            assert reply["online"] == len(online)
            assert len(reply["members"]) == 50 and reply["next"] is not None
        started = time.perf_counter()
        members = await room_call(api, owner, "GET", f"/rooms/{room}/members", limit=50)
        listing_ms = (time.perf_counter() - started) * 1000
        assert members.status == 200
        print(
            f"\nGET /rooms/{{room}}/presence, 20,000 members, 5,000 online: "
            f"{', '.join(f'{t:.1f}' for t in timings)} ms "
            f"(GET /rooms/{{room}}/members?limit=50: {listing_ms:.1f} ms)"
        )
    finally:
        await redis_client.zrem(keys.online, *online)


# ---- typing ------------------------------------------------------------------------------------


async def typing_ack(sock: ChatSocket, data: Any) -> Any:
    return await sock.sio.call("typing", data, timeout=WAIT)


def typing_in(room: str, user: User | None = None) -> Callable[[Any], bool]:
    return lambda d: d["room"] == room and (user is None or d["user"]["id"] == user.id)


async def test_typing_reaches_the_other_members_on_both_replicas_and_not_the_typist(
    api: Api, open_socket: Open
) -> None:
    ann, bob, cat, eve = [await new_user(api) for _ in range(4)]
    room = (await create_room(api, ann, kind="private", members=(bob, cat)))["id"]
    side = (await create_room(api, bob, kind="private", members=(eve,)))["id"]
    tab0, tab1 = await open_socket(ann, 0, name="ann0"), await open_socket(ann, 1, name="ann1")
    b, c, e = await open_socket(bob, 1), await open_socket(cat, 0), await open_socket(eve, 1)

    assert await typing_ack(tab0, {"room": room}) == {"ok": True}
    for sock in (b, c):
        typing = await sock.wait_ephemeral("typing", typing_in(room, ann))
        assert typing == {
            "room": room,
            "user": {"id": ann.id, "name": ann.name},
            "expiresIn": 6000,
        }
    # Fences: bob types after ann, in the room and in a room eve shares with him.
    assert await typing_ack(b, {"room": room}) == {"ok": True}
    assert await typing_ack(b, {"room": side}) == {"ok": True}
    for sock in (tab0, tab1, c):
        await sock.wait_ephemeral("typing", typing_in(room, bob))
    await e.wait_ephemeral("typing", typing_in(side, bob))
    assert tab0.received("typing", typing_in(room, ann)) == []
    assert tab1.received("typing", typing_in(room, ann)) == [], "not the typist's other tab"
    assert e.received("typing", typing_in(room)) == [], "not a non-member"
    assert b.received("typing", typing_in(room, bob)) == []


async def test_typing_from_a_non_member_is_refused_and_the_excess_is_dropped_and_counted(
    api: Api, open_socket: Open, state_stack: ChatStack
) -> None:
    ann, bob, eve = [await new_user(api) for _ in range(3)]
    room = (await create_room(api, ann, kind="private", members=(bob,)))["id"]
    other = (await create_room(api, ann, kind="private", members=(bob,)))["id"]
    a, b = await open_socket(ann, 0), await open_socket(bob, 1)
    e, legacy = await open_socket(eve, 0), await open_socket(ann, 0, rooms=False, name="legacy")

    async with aiohttp.ClientSession() as http:
        before = await scrape(http, state_stack.gateway_urls[0])
        assert await typing_ack(e, {"room": room}) == {"error": "not_member"}
        assert await typing_ack(legacy, {"room": room}) == {"error": "not_member"}
        assert await typing_ack(e, {"room": 42}) == {"error": "invalid"}
        acks = [await typing_ack(a, {"room": room}) for _ in range(5)]
        assert acks == [{"ok": True}] + [{"error": "rate_limited"}] * 4
        assert await typing_ack(a, {"room": other}) == {"ok": True}  # per room
        await b.wait_ephemeral("typing", typing_in(other, ann))  # the fence
        after = await scrape(http, state_stack.gateway_urls[0])

    assert len(b.received("typing", typing_in(room, ann))) == 1
    assert b.received("typing", lambda d: d["user"]["id"] == eve.id) == []

    def counted(outcome: str) -> float:
        series = "chat_typing_events_total"
        label = f'outcome="{outcome}"'
        return total(after, series, label) - total(before, series, label)

    assert counted("rate_limited") == 4
    assert counted("not_member") == 2
    assert counted("invalid") == 1
    assert counted("relayed") == 2


async def test_typing_is_not_relayed_in_a_room_above_the_limit_nor_in_the_global_room(
    api: Api, open_socket: Open
) -> None:
    """A big room would cost a write per member per keystroke: the typist is told so."""
    ann = await new_user(api)
    members = [await new_user(api) for _ in range(PUSH_MAX)]  # the room has PUSH_MAX + 1
    a, m = await open_socket(ann, 0), await open_socket(members[0], 1)
    big = (await create_room(api, ann, kind="private", members=tuple(members)))["id"]
    small = (await create_room(api, ann, kind="private", members=(members[0],)))["id"]
    for sock in (a, m):  # the gateways have both rooms
        await sock.wait_event("roomJoined", lambda d: d["room"]["id"] == small)

    assert await typing_ack(a, {"room": big}) == {"error": "room_too_large"}
    assert await typing_ack(a, {"room": GLOBAL_ROOM}) == {"error": "room_too_large"}
    assert await typing_ack(a, {"room": small}) == {"ok": True}
    await m.wait_ephemeral("typing", typing_in(small, ann))  # the fence
    assert m.received("typing", typing_in(big, ann)) == []
    assert m.received("typing", typing_in(GLOBAL_ROOM, ann)) == []


async def test_a_deleted_account_leaves_no_last_seen_time(
    api: Api, open_socket: Open, state_stack: ChatStack, redis_client: aioredis.Redis
) -> None:
    """Neither the one kept while it was away nor one written when its sockets drop."""
    keys = RedisKeys(state_stack.channel)
    ann, bob, cat = await new_user(api), await new_user(api), await new_user(api)
    b = await open_socket(bob, 0)
    await direct_room(api, ann, bob, b)
    await direct_room(api, cat, bob, b)
    away = await open_socket(cat, 1)
    await b.wait_ephemeral("presence", about(cat, True))
    await away.close()
    await b.wait_ephemeral("presence", about(cat, False))
    assert await redis_client.zscore(keys.last_seen, cat.id) is not None  # away: kept

    await open_socket(ann, 1)
    await b.wait_ephemeral("presence", about(ann, True))
    for user in (ann, cat):  # ann connected, cat away
        gone = await api.request(
            "DELETE", "/users/me", token=user.token, json={"password": user.password}
        )
        assert gone.status == 204, gone.text
    # Its sockets were dropped; it left its rooms, so nobody is pushed its going offline:
    # wait for the sweep to take it out of the online set.
    deadline = asyncio.get_running_loop().time() + WAIT
    while await redis_client.zscore(keys.online, ann.id) is not None:
        assert asyncio.get_running_loop().time() < deadline, "still online"
        await asyncio.sleep(0.05)  # wait-ok: polling Redis for the sweep, with a deadline
    assert await redis_client.zscore(keys.last_seen, ann.id) is None
    assert await redis_client.zscore(keys.last_seen, cat.id) is None


# ---- a replica dies (last: the module's stack gets the replica back afterwards) ---------------


async def test_the_users_of_a_killed_replica_go_offline_within_the_lease_and_a_sweep(
    api: Api, open_socket: Open, state_stack: ChatStack
) -> None:
    assert state_stack.local is not None
    ann, bob = await new_user(api), await new_user(api)
    b = await open_socket(bob, 0)
    await direct_room(api, ann, bob, b)
    connected_at = time.time()
    await open_socket(ann, 1)
    await b.wait_ephemeral("presence", about(ann, True))

    try:
        killed_at = time.time()
        await asyncio.to_thread(state_stack.local.kill_gateway, 1, signal.SIGKILL)
        offline = await b.wait_ephemeral(
            "presence", about(ann, False), timeout=LEASE + SWEEP + WAIT
        )
        took = time.time() - killed_at
        print(f"\noffline {took:.2f} s after SIGKILL (lease {LEASE} s, sweep {SWEEP} s)")
        # Renewed every third of the lease: its last renewal was at most that long ago.
        assert LEASE * 2 / 3 - SWEEP <= took <= LEASE + SWEEP + DELIVERY_SLACK, took
        assert connected_at - 1 <= epoch(offline["lastSeen"]) <= killed_at + 0.5
    finally:
        await asyncio.to_thread(state_stack.local.restart_gateway, 1)
