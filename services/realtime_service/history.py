"""Reading the recent-history stream and the room tails the API's relay writes.

See services/shared/redis_contract.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis.asyncio as aioredis

from services.shared.redis_contract import HistoryEntry, StreamEntries, committed_at_ms, stream_id


def is_complete(after: int, upto: int, entries: Sequence[HistoryEntry]) -> bool:
    """Do `entries` hold every message with `after < _id <= upto`?

    The relay links each entry to the message before it (`prev`), so the range is
    complete when the first entry follows `after` directly and the last one is `upto`.
    Nothing to replay (`after >= upto`) is complete by definition.
    """
    if after >= upto:
        return True
    if not entries:
        return False
    return entries[0].prev <= after and entries[-1].id == upto


class HistoryReader:
    """Range reads over the capped stream of recent messages."""

    def __init__(
        self, redis: aioredis.Redis, stream_key: str, max_replay: int, room_tails_key: str = ""
    ) -> None:
        self._redis = redis
        self._key = stream_key
        self._max_replay = max_replay
        self._room_tails_key = room_tails_key

    async def rooms_with_messages_after(self, rooms: Sequence[str], after: int) -> list[str]:
        """Those of `rooms` with a message or a message change (`P:room-tails`) after `after`."""
        if not rooms:
            return []
        tails = await self._redis.hmget(self._room_tails_key, list(rooms))
        return [room for room, tail in zip(rooms, tails, strict=True) if tail and int(tail) > after]

    async def tail_id(self) -> int:
        """The newest message id in the stream, 0 when there is none."""
        newest = cast(StreamEntries, await self._redis.xrevrange(self._key, count=1))
        return HistoryEntry.from_stream(*newest[0]).id if newest else 0

    async def replay(self, after: int, upto: int) -> list[HistoryEntry] | None:
        """Every message with `after < _id <= upto`, or None when that cannot be proven whole."""
        if after >= upto:
            return []
        raw = cast(
            StreamEntries,
            await self._redis.xrange(
                self._key, min=stream_id(after + 1), max=stream_id(upto), count=self._max_replay + 1
            ),
        )
        entries = [HistoryEntry.from_stream(entry_id, fields) for entry_id, fields in raw]
        if len(entries) > self._max_replay or not is_complete(after, upto, entries):
            return None
        return entries

    async def committed_since(self, since_ms: int) -> list[HistoryEntry]:
        """Entries committed at or after `since_ms` (epoch milliseconds), oldest first."""
        newest = cast(StreamEntries, await self._redis.xrevrange(self._key, count=self._max_replay))
        return [
            HistoryEntry.from_stream(entry_id, fields)
            for entry_id, fields in reversed(newest)
            if committed_at_ms(fields) >= since_ms
        ]
