"""The API's connection pool serves waiting requests in the order they came."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.api_service.db.pool import FairPool

ADMIN_URL = os.environ.get(
    "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CONNECTIONS = 4


@pytest.fixture
async def raw_pool() -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(ADMIN_URL, min_size=CONNECTIONS, max_size=CONNECTIONS)
    try:
        yield pool
    finally:
        await pool.close()


async def test_no_request_gets_a_connection_before_one_that_asked_earlier(
    raw_pool: asyncpg.Pool,
) -> None:
    """Four times more requests than connections, each running queries back to back.

    asyncpg's pool alone lets a newcomer take a connection that was just handed to a
    waiter (run here against it, over two hundred of the 320 acquires overtake an earlier
    one and some wait dozens of turns): that is the p99 of a busy API.
    """
    pool = FairPool(raw_pool, CONNECTIONS)
    tickets = itertools.count()
    served: list[int] = []

    async def request() -> None:
        for _ in range(20):
            ticket = next(tickets)
            async with pool.acquire() as conn:
                served.append(ticket)
                await conn.fetchval("SELECT 1")

    await asyncio.wait_for(asyncio.gather(*(request() for _ in range(4 * CONNECTIONS))), 30)
    assert served == sorted(served) and len(served) == 320
