"""The services' Redis clients queue a burst on their bounded pool instead of failing it."""

from __future__ import annotations

import asyncio
import os
import uuid

from services.shared.redis_clients import waiting_redis_client

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_a_burst_above_the_pool_waits_for_connections_and_all_of_it_succeeds() -> None:
    client = waiting_redis_client(REDIS_URL, max_connections=3, wait_seconds=10)
    key = f"pool-test-{uuid.uuid4().hex}"
    try:
        # Each call holds its connection ~0.1 s: 12 at once need 4 rounds of 3 connections.
        results = await asyncio.gather(*(client.blpop([key], timeout=0.1) for _ in range(12)))
        assert results == [None] * 12
    finally:
        await client.aclose()
