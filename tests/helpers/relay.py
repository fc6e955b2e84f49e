"""Publishing to a gateway's channel the way the outbox relay does, without an API."""

from __future__ import annotations

import redis.asyncio as aioredis

from services.shared.redis_contract import (
    PUBLISH_BATCH,
    Publication,
    RedisKeys,
    publish_batch_args,
    publish_batch_keys,
)


async def publish_like_the_relay(
    client: aioredis.Redis, prefix: str, publications: list[Publication], max_len: int = 1000
) -> int:
    """Run the relay's Lua script on `publications`; return how many were new.

    The script publishes only once the membership hashes are marked applied (the relay
    rebuilds them otherwise); with no API around, mark them applied up to nothing.
    """
    keys = RedisKeys(prefix)
    await client.set(keys.memberships_applied, 0, nx=True)
    script = client.register_script(PUBLISH_BATCH)
    return int(
        await script(
            keys=publish_batch_keys(keys), args=publish_batch_args(keys, max_len, publications)
        )
    )
