"""Recovery after a disconnect (`auth.lastId`), ordering of ids, and gateway-side loss.

Each test waits on events with a timeout; nothing sleeps and then asserts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time

import pytest
import redis.asyncio as aioredis
import socketio

from services.shared.redis_contract import history_stream_key
from services.shared.rooms import GLOBAL_ROOM_ID
from tests.helpers.limits import WAIT
from tests.helpers.processes import PrivateRedis
from tests.helpers.rest import create_room, fetch_after, new_user, post, post_to_room
from tests.helpers.sockets import ChatSocket, wait_gateway_holding
from tests.helpers.stack import Running

pytestmark = pytest.mark.timeout(90)


async def post_many(
    running: Running, user, count: int, prefix: str, concurrency: int = 1
) -> list[int]:
    """Post `count` messages (`concurrency` at a time); their ids, in commit order."""
    ids: list[int] = []
    for start in range(0, count, concurrency):
        batch = range(start, min(count, start + concurrency))
        ids.extend(await asyncio.gather(*(post(running.api, user, f"{prefix} {i}") for i in batch)))
    return sorted(ids)


@pytest.mark.parametrize("rooms", [False, True], ids=["legacy", "rooms-aware"])
async def test_reconnect_with_last_id_gets_exactly_the_missed_messages(
    recovery_stack: Running, rooms: bool
) -> None:
    """A rooms-aware client gets the global room's messages as `message`, the same ids."""
    s = recovery_stack
    user = await new_user(s.api)
    client = ChatSocket("gw1", s.gateway_urls[0], user, s.api, reconnection=False, rooms=rooms)
    # Stays connected to the same gateway: once it has the last missed message, so has
    # the gateway, and the whole backlog is history to replay (a POST is acknowledged
    # at commit, before the relay has published it).
    watcher = ChatSocket("gw1-watcher", s.gateway_urls[0], user, s.api, reconnection=False)
    try:
        await client.connect()
        await watcher.connect()
        seen = await post_many(s, user, 2, "before")
        await client.wait_ids(seen)
        assert client.socket_ids == seen

        await client.sio.disconnect()
        missed = await post_many(s, user, 10, "while away")
        await watcher.wait_ids(missed)
        await client.connect()  # the callable auth now carries lastId = seen[-1]

        event = await client.wait_recovered()
        assert client.socket_ids == seen + missed, "exactly the 10 missed, in order"
        assert (event.recovered, event.last_id, event.at_index) == (True, str(missed[-1]), 12)
        assert event.refetch == ([] if rooms else None)

        live, fence = await post_many(s, user, 2, "live")
        await client.wait_ids([fence])
        assert client.socket_ids == seen + missed + [live, fence], "live messages arrive once"
        assert len(client.recovered_events) == 1
    finally:
        await client.close()
        await watcher.close()


async def test_last_id_older_than_history_is_not_recovered(
    short_history_stack: Running, recovery_redis: PrivateRedis
) -> None:
    s = short_history_stack
    user = await new_user(s.api)
    (oldest,) = await post_many(s, user, 1, "oldest")
    room = (await create_room(s.api, user, kind="private"))["id"]
    await create_room(s.api, user, kind="private")  # a room with nothing new: not refetched
    in_room = await post_to_room(s.api, user, room, "in a room")
    assert in_room.status == 201, in_room.text
    newer = await post_many(s, user, 300, "flood", concurrency=20)
    redis = aioredis.Redis.from_url(recovery_redis.url)
    try:
        kept = await redis.xrange(history_stream_key(s.channel), count=1)
        assert kept and int(kept[0][0].split(b"-")[0]) > oldest + 1, "the stream was not trimmed"
    finally:
        await redis.aclose()

    client = ChatSocket("gw1", s.gateway_urls[0], user, s.api, reconnection=False)
    client.last_id = oldest
    try:
        await client.connect()
        event = await client.wait_recovered()
        assert (event.recovered, event.last_id, event.at_index) == (False, str(oldest), 0)
        # A real client refetches over REST; nothing partial came over the socket.
        await client.wait_ids(newer)
        assert client.rest_ids == newer
        fence = await post(s.api, user, "fence")
        await client.wait_ids([fence])
        assert client.socket_ids == [fence], "no history was replayed over the socket"
    finally:
        await client.close()

    # A rooms-aware client is told which of its rooms had messages since.
    aware = ChatSocket("gw2-rooms", s.gateway_urls[1], user, s.api, reconnection=False, rooms=True)
    aware.last_id = oldest
    try:
        await aware.connect()
        event = await aware.wait_recovered()
        assert not event.recovered
        assert sorted(event.refetch or []) == sorted([GLOBAL_ROOM_ID, room])
        assert aware.socket_ids == []
    finally:
        await aware.close()


async def test_client_without_last_id_gets_live_messages_and_no_recovered_event(
    recovery_stack: Running,
) -> None:
    s = recovery_stack
    user = await new_user(s.api)
    client = ChatSocket("react-like", s.lb_url, user, s.api, send_last_id=False, reconnection=False)
    try:
        await client.connect()
        ids = await post_many(s, user, 3, "live")
        await client.wait_ids(ids)
        # A recovering client gets `recovered` before any live message; none came.
        assert client.socket_ids == ids
        assert client.recovered_events == []
    finally:
        await client.close()


@pytest.mark.parametrize(
    "how,value",
    [("auth", "abc"), ("auth", "-1"), ("auth", "1.5"), ("auth", "9" * 40), ("query", "12x")],
)
async def test_malformed_last_id_is_refused(recovery_stack: Running, how: str, value: str) -> None:
    s = recovery_stack
    user = await new_user(s.api)
    errors: list[object] = []
    sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    sio.on("connect_error", lambda data: errors.append(data))
    url = s.gateway_urls[0] + (f"?last_id={value}" if how == "query" else "")
    auth = {"token": user.token, **({"lastId": value} if how == "auth" else {})}
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=WAIT)
        text = json.dumps(errors)
        assert "lastId" in text, errors
    finally:
        if sio.connected:
            await sio.disconnect()
        await sio.shutdown()


async def test_ids_become_visible_in_order_under_concurrent_writers(
    recovery_stack: Running,
) -> None:
    s = recovery_stack
    users = [await new_user(s.api) for _ in range(4)]
    marker = await post(s.api, users[0], "marker")
    writers_done = asyncio.Event()
    seen: list[int] = []

    async def writer(k: int) -> None:
        for i in range(25):
            await post(s.api, users[k % len(users)], f"w{k} {i}")

    async def reader() -> None:
        after = marker
        while True:
            finished = writers_done.is_set()  # read BEFORE the page: an empty page then is final
            reply = await s.api.request(
                "GET",
                "/messages",
                token=users[0].token,
                params={"after": str(after), "limit": "50"},
            )
            assert reply.status == 200, reply.text
            page = [int(m["_id"]) for m in reply.body]
            seen.extend(page)
            if page:
                after = page[-1]
            elif finished:
                return

    read = asyncio.create_task(reader())
    await asyncio.gather(*(writer(k) for k in range(8)))
    writers_done.set()
    await asyncio.wait_for(read, WAIT)

    final = await fetch_after(s.api, users[0], marker)
    assert len(final) == 200
    assert seen == final, "the paging reader skipped or repeated ids"
    assert all(a < b for a, b in itertools.pairwise(seen)), "ids not strictly increasing"


async def test_gateways_losing_their_subscription_still_deliver_everything_once(
    recovery_stack: Running, recovery_redis: PrivateRedis
) -> None:
    """Legacy and rooms-aware clients alike: the gap is filled from the stream, in order."""
    s = recovery_stack
    user = await new_user(s.api)
    clients = [
        ChatSocket(
            f"gw{i + 1}{'-rooms' * rooms}", url, user, s.api, reconnection=False, rooms=rooms
        )
        for i, url in enumerate(s.gateway_urls)
        for rooms in (False, True)
    ]
    redis = aioredis.Redis.from_url(recovery_redis.url)
    try:
        for client in clients:
            await client.connect()
        baseline = await post_many(s, user, 1, "baseline")
        for client in clients:
            await client.wait_ids(baseline)

        killed = await redis.client_kill_filter(_type="pubsub")
        assert killed >= 2, f"expected both gateways' subscriptions, killed {killed}"
        during = await post_many(s, user, 8, "while unsubscribed")
        for client in clients:
            await client.wait_ids(during)

        fence = await post(s.api, user, "fence")
        expected = baseline + during + [fence]
        for client in clients:
            await client.wait_ids([fence])
            assert client.socket_ids == expected, f"{client.name}: {client.summary()}"
    finally:
        await redis.aclose()
        for client in clients:
            await client.close()


async def test_graceful_shutdown_sends_clients_to_another_replica_without_loss(
    recovery_stack: Running,
) -> None:
    s = recovery_stack
    user = await new_user(s.api)
    client = ChatSocket("via-lb", s.lb_url, user, s.api)
    victim: int | None = None
    try:
        await client.connect()
        victim = await wait_gateway_holding(s.local.gateways, client.sio.get_sid())
        before = await post_many(s, user, 3, "before")
        await client.wait_ids(before)

        process = s.local.gateway_process(victim)
        started = time.monotonic()
        s.local.kill_gateway(victim, signal.SIGTERM, wait=False)
        during = await post_many(s, user, 10, "during shutdown")
        code = await asyncio.to_thread(process.popen.wait, 20)
        took = time.monotonic() - started
        print(f"gateway exit {code} after {took:.1f}s")
        assert code == 0 and took < 15, f"gateway exit {code} after {took:.1f}s"

        await client.wait_connected(2)
        event = await client.wait_recovered()
        after = await post_many(s, user, 2, "after")
        await client.wait_ids(after)
        assert event.recovered, event
        assert client.socket_ids == before + during + after, client.summary()
    finally:
        await client.close()
        if victim is not None:
            await asyncio.to_thread(s.local.restart_gateway, victim)


async def test_graceful_shutdown_makes_a_stock_python_client_reconnect(
    recovery_stack: Running,
) -> None:
    s = recovery_stack
    user = await new_user(s.api)
    victim = 1
    client = ChatSocket("stock", s.gateway_urls[victim], user, s.api, js_like_reconnect=False)
    try:
        await client.connect()
        s.local.kill_gateway(victim, signal.SIGTERM, wait=False)
        await client.wait_for(lambda: bool(client.disconnect_reasons), what="the disconnect")
        deadline = time.monotonic() + WAIT
        while client.sio.eio.state != "disconnected":  # the client finishes its teardown
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)  # wait-ok: polling a state with a deadline
        assert client.sio._reconnect_task is not None, (
            f"no reconnect scheduled after {client.disconnect_reasons}"
        )
    finally:
        await client.close()
        await asyncio.to_thread(s.local.restart_gateway, victim)
