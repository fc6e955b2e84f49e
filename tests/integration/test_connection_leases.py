"""The per-user connection leases against a real Redis: renewal in chunks, revoked users."""

from __future__ import annotations

import os
import uuid

import pytest
import redis.asyncio as aioredis

from services.realtime_service import connections as connections_module
from services.realtime_service.connections import Admission, UserConnections
from services.shared.redis_contract import RedisKeys
from services.shared.revocation import revoke_user

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LEASE = 30.0


async def test_renewal_extends_every_live_lease_across_chunks_and_gives_back_lost_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connections_module, "RENEW_CHUNK", 2)  # 5 connections: 3 chunks
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = RedisKeys(f"leases-test-{uuid.uuid4().hex}")
    leases = UserConnections(client, keys, cap=20, lease_seconds=LEASE)
    ann, bob = "ann", "bob"
    try:
        for user, sid in ((ann, "a1"), (ann, "a2"), (ann, "a3"), (bob, "b1"), (bob, "b2")):
            assert await leases.admit(user, sid) is Admission.ADMITTED
        admitted = {
            sid: await client.zscore(keys.connections(user), sid)
            for user, sid in ((ann, "a1"), (ann, "a2"), (bob, "b1"))
        }
        # a3's lease lapsed meanwhile (this replica stalled), yet a3 is still connected;
        # b2 disconnected (its lease released).
        await client.zrem(keys.connections(ann), "a3")
        await leases.release("b2")
        await client.persist(keys.connections(bob))

        await leases._renew()

        for user, sid in ((ann, "a1"), (ann, "a2"), (bob, "b1")):
            assert await client.zscore(keys.connections(user), sid) > admitted[sid]
        assert await client.zscore(keys.connections(ann), "a3") is not None  # counted again
        assert await client.zscore(keys.connections(bob), "b2") is None  # gone: not revived
        ttl_ms = await client.pttl(keys.connections(bob))
        assert LEASE * 1000 < ttl_ms <= LEASE * 2000  # the key expires again, after two leases
    finally:
        async for key in client.scan_iter(match=keys.pattern):
            await client.delete(key)
        await client.aclose()


async def test_an_id_that_cannot_travel_in_a_renewal_is_refused_at_admission() -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = RedisKeys(f"leases-test-{uuid.uuid4().hex}")
    leases = UserConnections(client, keys, cap=0, lease_seconds=LEASE)
    try:
        # A space would shift every "sid user" pair after it in a renewal call.
        for user, sid in (("ann smith", "a1"), ("ann", "a 1"), ("", "a1")):
            with pytest.raises(ValueError):
                await leases.admit(user, sid)
        assert leases.users() == []
        assert [key async for key in client.scan_iter(match=keys.pattern)] == []
    finally:
        await client.aclose()


@pytest.mark.parametrize("cap", [2, 0])
async def test_a_revoked_user_is_refused_with_or_without_a_cap(cap: int) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = RedisKeys(f"leases-test-{uuid.uuid4().hex}")
    leases = UserConnections(client, keys, cap=cap, lease_seconds=LEASE)
    try:
        assert await leases.admit("ann", "a1") is Admission.ADMITTED
        await revoke_user(client, keys, "ann", ttl_seconds=60)

        assert await leases.admit("ann", "a2") is Admission.REVOKED
        assert await leases.admit("bob", "b1") is Admission.ADMITTED
        assert leases.sids_of("ann") == ["a1"], "a refused connection is not indexed"
        await leases.release("a1")
        assert leases.sids_of("ann") == [] and leases.users() == ["bob"]
    finally:
        async for key in client.scan_iter(match=keys.pattern):
            await client.delete(key)
        await client.aclose()
