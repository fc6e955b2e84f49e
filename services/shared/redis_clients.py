"""Redis clients whose connection pool waits for a free connection instead of failing.

redis-py's asyncio pool has a fixed cap (100 connections) and raises at once when a
burst needs more: under a reconnect storm or a mass disconnect a gateway refused typing,
admitted clients unchecked and failed to release leases (users stayed "online" for a
lease instead of the offline grace). A blocking pool keeps the connections to Redis
bounded and makes a burst queue for `wait_seconds` instead.
"""

from __future__ import annotations

import redis.asyncio as aioredis

MAX_CONNECTIONS = 64
WAIT_SECONDS = 5.0


def waiting_redis_client(
    url: str, *, max_connections: int = MAX_CONNECTIONS, wait_seconds: float = WAIT_SECONDS
) -> aioredis.Redis:
    """A client on its own blocking pool, closed with it (`aclose`)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=wait_seconds
    )
    return aioredis.Redis.from_pool(pool)
