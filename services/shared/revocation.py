"""The Redis contract for revoking a user's access on every replica.

Tokens are verified without a database round trip, so a deleted account's token stays
valid by signature until it expires. Revocation closes that gap:

* `revoked_key(prefix, user_id)`: a key that exists while tokens issued to the user
  may still be unexpired (its TTL is the longest lifetime a token may claim). The API
  sets it before the account is deleted; a gateway refuses a connecting user whose key
  exists.
* `revocations_channel(prefix)`: a pub/sub channel carrying the user id. Every gateway
  subscribes and drops that user's live sockets at once.

The API writes both before deleting the row, and refuses the deletion (503) while
Redis is unreachable, so a deletion that succeeded was always announced.
"""

from __future__ import annotations

import redis.asyncio as aioredis

REVOKED_MARK = b"1"


def revoked_key(prefix: str, user_id: str) -> str:
    return f"{prefix}:revoked:{user_id}"


def revocations_channel(prefix: str) -> str:
    return f"{prefix}:revocations"


async def revoke_user(redis: aioredis.Redis, prefix: str, user_id: str, ttl_seconds: int) -> None:
    """Mark `user_id` revoked for `ttl_seconds` and tell every gateway to drop its sockets."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(revoked_key(prefix, user_id), REVOKED_MARK, ex=max(1, ttl_seconds))
        pipe.publish(revocations_channel(prefix), user_id)
        await pipe.execute()


async def is_revoked(redis: aioredis.Redis, prefix: str, user_id: str) -> bool:
    return bool(await redis.exists(revoked_key(prefix, user_id)))
