"""Publishing to a gateway's channel the way the outbox relay does, without an API."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import redis.asyncio as aioredis

from services.shared.redis_contract import (
    PUBLISH_BATCH,
    EntryInfo,
    Publication,
    RedisKeys,
    emit_packet,
    publish_batch_args,
    publish_batch_keys,
)
from services.shared.rooms import JOINED, LEFT, MESSAGE, ROLE, UPDATED
from tests.helpers.rest import User


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


class RelayLike:
    """Publishes messages and room events of any room exactly as the relay would.

    Ids continue the stream's newest one, each entry linked to the one before it; room
    events carry the payloads the API writes (docs/DELIVERY.md, "Rooms"), and the
    relay's script keeps the membership hashes and room tails, as in production. For a
    stack whose API publishes nothing itself (no posts over REST while it is used).
    """

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.last_id: int | None = None

    async def publish(self, *entries: tuple[EntryInfo, dict[str, Any]]) -> list[int]:
        """Publish `entries` (info, payload without `_id` for events) in one call; their ids."""
        if self.last_id is None:
            newest = await self.client.xrevrange(RedisKeys(self.prefix).history_stream, count=1)
            self.last_id = int(newest[0][0].split(b"-")[0]) if newest else 0
        publications, ids = [], []
        prev = self.last_id
        for info, payload in entries:
            entry_id = prev + 1
            wire = {"_id": str(entry_id), **payload} if info.kind == MESSAGE else payload
            publications.append(
                Publication(
                    entry_id,
                    prev,
                    orjson.dumps(wire),
                    emit_packet(wire, entry_id, prev, info),
                    int(time.time() * 1000),
                    info,
                )
            )
            ids.append(entry_id)
            prev = entry_id
        assert await publish_like_the_relay(self.client, self.prefix, publications) == len(ids)
        self.last_id = prev
        return ids

    async def message(self, room: str, owner: User, text: str) -> int:
        (entry_id,) = await self.publish(message_entry(room, owner, text))
        return entry_id


def message_entry(room: str, owner: User, text: str) -> tuple[EntryInfo, dict[str, Any]]:
    """A message's entry as the relay publishes it (its wire object has no room)."""
    wire = {
        "id": str(uuid.uuid4()),
        "owner": owner.id,
        "userName": owner.name,
        "text": text,
        "createdAt": "2026-11-28T10:00:00+00:00",
    }
    return EntryInfo(room, MESSAGE), wire


def joined_entry(
    room: str, user: User, role: str = "member", name: str = "Room"
) -> tuple[EntryInfo, dict[str, Any]]:
    room_object = {"id": room, "kind": "private", "name": name, "topic": "", "archived": False}
    payload = {"room": room_object, "user": {"id": user.id, "name": user.name}, "role": role}
    return EntryInfo(room, JOINED, user.id), payload


def left_entry(room: str, user: User, reason: str = "removed") -> tuple[EntryInfo, dict[str, Any]]:
    payload = {"room": room, "reason": reason, "user": {"id": user.id, "name": user.name}}
    return EntryInfo(room, LEFT, user.id), payload


def role_entry(room: str, user: User, role: str) -> tuple[EntryInfo, dict[str, Any]]:
    payload = {"room": room, "user": {"id": user.id, "name": user.name}, "role": role}
    return EntryInfo(room, ROLE, user.id), payload


def updated_entry(room: str, name: str, topic: str = "") -> tuple[EntryInfo, dict[str, Any]]:
    payload = {"room": {"id": room, "name": name, "topic": topic, "archived": False}}
    return EntryInfo(room, UPDATED, None), payload
