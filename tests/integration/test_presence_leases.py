"""Presence transitions decided in Redis by the lease scripts, against a real Redis.

Two `UserConnections` play two gateway replicas on one key prefix, on a clock the test
moves (the scripts take `now` from the caller), and every change is read from the
presence channel. "Nothing was published" is checked behind a fence: a marker the test
publishes on the same channel after the operation returned, which arrives after
anything the operation published.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from services.realtime_service import connections as connections_module
from services.realtime_service import presence as presence_module
from services.realtime_service.connections import UserConnections
from services.realtime_service.presence import PresenceConfig, PresenceSweeper
from services.shared.redis_contract import RedisKeys
from tests.helpers.limits import REDIS_URL, WAIT

LEASE = 15.0
GRACE = 5.0
START = 1_800_000_000.0
CONFIG = PresenceConfig(offline_grace_seconds=GRACE, sweep_seconds=1.0, push_max_members=3)
SMALL, BIG, UNSIZED = "room-small", "room-big", "room-unsized"
FENCE = b"fence"


class Clock:
    """What the scripts are told the time is."""

    def __init__(self) -> None:
        self.now = START

    def time(self) -> float:
        return self.now


@dataclass
class World:
    redis: aioredis.Redis
    keys: RedisKeys
    clock: Clock
    replicas: tuple[UserConnections, UserConnections]
    sweepers: tuple[PresenceSweeper, PresenceSweeper]
    changes: Any  # the pub/sub subscription to the presence channel

    async def published(self) -> list[dict[str, Any]]:
        """Every change published since the last call (up to a fence published now)."""
        await self.redis.publish(self.keys.presence_channel, FENCE)
        changes = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            message = await self.changes.get_message(timeout=WAIT)
            if message is None or message["type"] != "message":
                continue  # the subscription's confirmation
            if message["data"] == FENCE:
                return changes
            change = orjson.loads(message["data"])
            assert isinstance(change["lastSeen"], str), "a score as Redis gives it back"
            changes.append({**change, "lastSeen": float(change["lastSeen"])})
        raise AssertionError(f"the fence never arrived (after {changes})")

    async def sweep(self) -> None:
        for sweeper in self.sweepers:
            await sweeper.sweep()


@pytest.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    clock = Clock()
    monkeypatch.setattr(connections_module, "time", clock)
    monkeypatch.setattr(presence_module, "time", clock)
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = RedisKeys(f"presence-test-{uuid.uuid4().hex}")
    # ann is in a room of 2 members, one of 10 and one whose size is not known.
    await client.hset(keys.user_rooms("ann"), mapping={SMALL: 1, BIG: 2, UNSIZED: 3, "@": 3})
    await client.hset(keys.room_sizes, mapping={SMALL: 2, BIG: 10, "@": 1})
    pubsub = client.pubsub()
    await pubsub.subscribe(keys.presence_channel)
    replicas = (
        UserConnections(client, keys, cap=0, lease_seconds=LEASE, presence=CONFIG),
        UserConnections(client, keys, cap=0, lease_seconds=LEASE, presence=CONFIG),
    )
    sweepers = (
        PresenceSweeper(client, keys, CONFIG, LEASE),
        PresenceSweeper(client, keys, CONFIG, LEASE),
    )
    try:
        yield World(client, keys, clock, replicas, sweepers, pubsub)
    finally:
        await pubsub.aclose()
        async for key in client.scan_iter(match=keys.pattern):
            await client.delete(key)
        await client.aclose()


async def test_the_first_connection_is_online_once_and_the_last_goes_offline_after_the_grace(
    world: World,
) -> None:
    gw0, gw1 = world.replicas
    await gw0.admit("ann", "a1")
    assert await world.published() == [
        {"user": "ann", "online": True, "lastSeen": START, "rooms": [SMALL]}
    ], "published once, to the small room only (the big one and the unsized one push nothing)"

    world.clock.now += 1
    await gw1.admit("ann", "a2")  # a second tab, on the other replica
    await gw0.release("a1")
    assert await world.published() == []

    world.clock.now += 1
    closed_at = world.clock.now
    await gw1.release("a2")
    world.clock.now += GRACE - 0.1
    await world.sweep()
    assert await world.published() == [], "still within the grace"
    assert await world.redis.zscore(world.keys.online, "ann") is not None

    world.clock.now += 0.2
    await world.sweep()
    assert await world.published() == [
        {"user": "ann", "online": False, "lastSeen": closed_at, "rooms": [SMALL]}
    ]
    assert await world.redis.zscore(world.keys.online, "ann") is None
    assert await world.redis.zscore(world.keys.last_seen, "ann") == closed_at


async def test_a_reconnect_within_the_grace_publishes_nothing(world: World) -> None:
    gw0, gw1 = world.replicas
    await gw0.admit("ann", "a1")
    await world.published()
    await gw0.release("a1")
    world.clock.now += GRACE / 2
    await gw1.admit("ann", "a2")  # the page reloaded, through the other replica
    world.clock.now += GRACE
    await world.sweep()
    assert await world.published() == []
    assert await world.redis.zscore(world.keys.online, "ann") is not None


async def test_the_leases_of_a_dead_replica_lapse_and_one_sweep_takes_the_user_offline(
    world: World,
) -> None:
    dead, _ = world.replicas
    await dead.admit("ann", "a1")
    world.clock.now += 4
    renewed_at = world.clock.now
    await dead._renew()  # its last renewal; then it dies and renews no more
    await world.published()

    world.clock.now = renewed_at + LEASE - 0.1
    await world.sweep()
    assert await world.published() == [], "the lease is still live"

    world.clock.now = renewed_at + LEASE + 0.1
    await world.sweep()  # both replicas sweep: one takes ann offline, the other finds nothing
    assert await world.published() == [
        {"user": "ann", "online": False, "lastSeen": renewed_at, "rooms": [SMALL]}
    ]
    assert await world.redis.zcard(world.keys.connections("ann")) == 0


async def test_renewal_keeps_a_user_online_and_gives_back_leases_redis_lost(
    world: World,
) -> None:
    (gw0, _) = world.replicas
    await gw0.admit("ann", "a1")
    await world.published()
    for _ in range(3):  # well past the first lease, renewed every third of it
        world.clock.now += LEASE / 3
        await gw0._renew()
        await world.sweep()
    assert await world.published() == []

    await world.redis.delete(world.keys.online, world.keys.connections("ann"))  # data lost
    world.clock.now += LEASE / 3
    await gw0._renew()
    assert await world.published() == [
        {"user": "ann", "online": True, "lastSeen": world.clock.now, "rooms": [SMALL]}
    ]
    assert await world.redis.zscore(world.keys.connections("ann"), "a1") is not None


async def test_a_connection_released_while_its_renewal_is_in_flight_is_not_revived(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    (gw0, _) = world.replicas
    await gw0.admit("ann", "a1")
    await world.published()
    renew = gw0._renew_leases

    async def renew_while_the_client_leaves(**kwargs: Any) -> Any:
        released = gw0.release("a1")  # the disconnect arrives while the call is in flight
        result = await renew(**kwargs)
        await released
        return result

    monkeypatch.setattr(gw0, "_renew_leases", renew_while_the_client_leaves)
    world.clock.now += LEASE / 3
    await gw0._renew()
    assert await world.redis.zscore(world.keys.connections("ann"), "a1") is None
    world.clock.now += GRACE + 0.1
    await world.sweep()
    assert [change["online"] for change in await world.published()] == [False]
