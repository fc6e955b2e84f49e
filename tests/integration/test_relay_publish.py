"""The relay's Lua script against a real Redis: a retried batch publishes only what is new,
and the room sizes count each membership once."""

from __future__ import annotations

import asyncio
import os
import uuid

import orjson
import redis.asyncio as aioredis

from services.shared.redis_contract import (
    BATCH_PACKET_BYTES,
    EntryInfo,
    Publication,
    RedisKeys,
    emit_packet,
    history_stream_key,
    relayed_packets,
)
from tests.helpers.relay import RelayLike, joined_entry, left_entry, publish_like_the_relay
from tests.helpers.rest import User

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
        batches: list[list[int]] = []
        while len(batches) < 3:
            message = await asyncio.wait_for(
                pubsub.get_message(ignore_subscribe_messages=True, timeout=5), 6
            )
            if message is not None:
                packets = relayed_packets(orjson.loads(message["data"]))
                assert packets is not None
                batches.append([packet["seq"]["id"] for packet in packets])
        # One channel message per batch, each with only the ids that were new.
        assert batches == [[1, 2, 3], [4, 5], [6]]
    finally:
        await pubsub.aclose()
        await client.delete(
            stream, RedisKeys(channel).memberships_applied, RedisKeys(channel).room_tails
        )
        await client.delete(stream)
        await client.aclose()


async def test_a_batch_of_large_messages_is_split_into_channel_messages_of_bounded_size() -> None:
    """A gateway reads one channel message at a time; 8 x 20 KB must not arrive as one."""
    channel = f"relay-test-{uuid.uuid4().hex}"
    client = aioredis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    large = [
        Publication(
            i, i - 1, b"{}", emit_packet({"_id": str(i), "text": "x" * 20_000}, i, i - 1), 0
        )
        for i in range(1, 9)
    ]
    try:
        assert await publish_like_the_relay(client, channel, large) == 8
        ids: list[int] = []
        sizes: list[int] = []
        while len(ids) < 8:
            message = await asyncio.wait_for(
                pubsub.get_message(ignore_subscribe_messages=True, timeout=5), 6
            )
            if message is not None:
                sizes.append(len(message["data"]))
                ids += [
                    p["seq"]["id"] for p in relayed_packets(orjson.loads(message["data"])) or []
                ]
        assert ids == list(range(1, 9))
        assert len(sizes) > 1 and max(sizes) < BATCH_PACKET_BYTES + 25_000, sizes
    finally:
        await pubsub.aclose()
        keys = RedisKeys(channel)
        await client.delete(history_stream_key(channel), keys.memberships_applied, keys.room_tails)
        await client.aclose()


async def test_room_sizes_count_each_membership_once_also_when_an_event_is_applied_again() -> None:
    prefix = f"relay-test-{uuid.uuid4().hex}"
    keys = RedisKeys(prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    relay = RelayLike(client, prefix)
    room = str(uuid.uuid4())
    ann, bob, eve = (User(str(uuid.uuid4()), name, "", "", "") for name in ("Ann", "Bob", "Eve"))
    try:
        await relay.publish(joined_entry(room, ann), joined_entry(room, bob))
        assert await client.hget(keys.room_sizes, room) == b"2"
        # After a rebuild the hashes may already show a change the relay publishes next:
        # Eve is in her hash, and her `joined` event is applied again.
        await client.hset(keys.user_rooms(eve.id), room, 0)
        await client.hincrby(keys.room_sizes, room, 1)
        await relay.publish(joined_entry(room, eve), left_entry(room, bob))
        assert await client.hget(keys.room_sizes, room) == b"2"
        await relay.publish(left_entry(room, bob))  # removing a non-member changes nothing
        assert await client.hget(keys.room_sizes, room) == b"2"
    finally:
        async for key in client.scan_iter(match=keys.pattern):
            await client.delete(key)
        await client.delete(prefix)
        await client.aclose()


async def test_a_rooms_tail_moves_with_its_messages_and_their_changes() -> None:
    """`P:room-tails` names the rooms a client that lost the stream must refetch: a room
    whose only news is an edit, a deletion or a reaction is one of them."""
    channel = f"relay-test-{uuid.uuid4().hex}"
    keys = RedisKeys(channel)
    client = aioredis.Redis.from_url(REDIS_URL)
    room = str(uuid.uuid4())
    kinds = ["message", "joined", "edited", "role", "deleted", "updated", "reaction", "left"]
    member = str(uuid.uuid4())
    tails: list[int | None] = []
    try:
        for entry_id, kind in enumerate(kinds, 1):
            subject = member if kind in ("joined", "left", "role") else None
            info = EntryInfo(room, kind, subject)
            packet = emit_packet({}, entry_id, entry_id - 1, info)
            publication = Publication(entry_id, entry_id - 1, b"{}", packet, 0, info)
            assert await publish_like_the_relay(client, channel, [publication]) == 1
            tail = await client.hget(keys.room_tails, room)
            tails.append(None if tail is None else int(tail))
        assert tails == [1, 1, 3, 3, 5, 5, 7, 7]
    finally:
        await client.delete(
            keys.history_stream,
            keys.memberships_applied,
            keys.room_tails,
            keys.room_sizes,
            keys.user_rooms(member),
        )
        await client.aclose()
