"""Revoking a user's access on every replica (the keys are in redis_contract.py).

Tokens are verified without a database round trip, so a deleted account's token stays
valid by signature until it expires. The API calls `revoke_user` before it deletes the
account: the revocation mark makes gateways refuse the user's new connections, and the
announcement on the revocations channel makes every gateway drop the user's live
sockets at once.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from services.shared.redis_contract import REVOKED_MARK, RedisKeys


async def revoke_user(
    redis: aioredis.Redis, names: RedisKeys, user_id: str, ttl_seconds: int
) -> None:
    """Mark `user_id` revoked for `ttl_seconds` and tell every gateway to drop its sockets.

    The user's last-seen time goes too (presence keeps none for a deleted account: the
    gateways' sweep leaves none behind once the mark exists).
    """
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(names.revoked(user_id), REVOKED_MARK, ex=max(1, ttl_seconds))
        pipe.zrem(names.last_seen, user_id)
        pipe.publish(names.revocations_channel, user_id)
        await pipe.execute()
