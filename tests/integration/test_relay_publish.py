"""The relay's Lua script against a real Redis: a retried batch publishes only what is new."""

from __future__ import annotations

import asyncio
import os
import uuid

import orjson
import redis.asyncio as aioredis

from services.shared.redis_contract import (
    Publication,
    RedisKeys,
    emit_packet,
    history_stream_key,
)
from tests.helpers.relay import publish_like_the_relay

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def publications(first: int, last: int) -> list[Publication]:
    out = []
    for message_id in range(first, last + 1):
        wire = {"_id": str(message_id), "text": f"m{message_id}"}
        out.append(
            Publication(
                message_id, message_id - 1, b"{}", emit_packet(wire, message_id, message_id - 1), 0
            )
        )
    return out


async def test_a_retried_batch_appends_and_publishes_only_the_new_ids() -> None:
    channel = f"relay-test-{uuid.uuid4().hex}"
    stream = history_stream_key(channel)
    client = aioredis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    try:
        assert await publish_like_the_relay(client, channel, publications(1, 3)) == 3
        # The relay died before saving its cursor and sends an overlapping batch again.
        assert await publish_like_the_relay(client, channel, publications(2, 5)) == 2

        # A marker after the retry: had anything been published twice, it would come before.
        assert await publish_like_the_relay(client, channel, publications(6, 6)) == 1

        ids = [int(entry_id.split(b"-")[0]) for entry_id, _ in await client.xrange(stream)]
        assert ids == [1, 2, 3, 4, 5, 6]
        received: list[int] = []
        while len(received) < 6:
            message = await asyncio.wait_for(
                pubsub.get_message(ignore_subscribe_messages=True, timeout=5), 6
            )
            if message is not None:
                received.append(orjson.loads(message["data"])["seq"]["id"])
        assert received == [1, 2, 3, 4, 5, 6]
    finally:
        await pubsub.aclose()
        await client.delete(
            stream, RedisKeys(channel).memberships_applied, RedisKeys(channel).room_tails
        )
        await client.delete(stream)
        await client.aclose()
