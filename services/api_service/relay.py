"""The outbox relay: publishes committed messages to Redis in `_id` order, never dropping one.

Why not publish straight from the request handler: python-socketio's manager gives up
after two failed publishes and only logs, and a process that dies between commit and
publish never publishes at all. Here the messages table is the outbox and
`relay_state` holds the cursor. A relay:

1. becomes the one active relay by holding a PostgreSQL advisory lock on its own
   connection; if its process dies, the lock goes with the connection and a relay in
   another API process takes over within about a second;
2. wakes on an in-process signal after each commit and on LISTEN/NOTIFY from other
   processes (a missed hint only costs one `RELAY_POLL_SECONDS` poll);
3. publishes each batch with one Lua script that appends every message to the history
   stream and publishes it on the manager channel atomically, skipping ids the stream
   already has, so a retried batch never delivers twice;
4. advances the cursor only after Redis accepted the batch, and retries with capped
   backoff while Redis or PostgreSQL is down.

Ids are published in id order, and the order must hold although writes to different
rooms commit side by side (migration 0009): a post can commit id 8 while id 7, taken
just before by a post in another room, is still committing. A relay that published 8
would have to skip 7 later. So an entry that follows a hole waits: the relay waits for
the transactions of its read's snapshot that took ids (the only ones that can fill the
hole), reads again, and then knows that what is still missing never will be. A write
takes a few milliseconds from its id to its commit, so this costs about that.

Under load the relay lingers: it publishes at most once every `linger_seconds`
(`RELAY_LINGER_MS`, 2 ms), so what commits meanwhile goes out as one batch, one
channel message (redis_contract.py). A gateway pays about 50 µs to be woken for and
parse a channel message whatever it carries, as much as a few deliveries; in rooms of
ten at 1,000 messages/s this is a sixth of its CPU (docs/PERFORMANCE.md). A message
that commits after a quiet spell is published at once; the wait only falls on one
that follows another within the linger.

Two shortcuts keep a message's path from commit to Redis short. The messages this
process just committed are handed over in memory, so the relay reads them back from
PostgreSQL only when they do not continue its cursor (another process's commit, a
write in flight, or an id skipped by a conflicting insert). And the cursor is saved
without waiting for the WAL flush, and at most every `cursor_save_seconds`: a crash
that loses the newest cursor only makes the next relay publish those messages again,
and the Lua script skips ids the stream already holds (gateways drop any id they
already delivered).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import asyncpg
import orjson
import redis.asyncio as aioredis

from services.api_service.db.messages import NEW_MESSAGE_CHANNEL
from services.api_service.db.room_events import (
    Outboxed,
    RoomEvent,
    outbox_after,
    wait_for_entry_writers,
)
from services.api_service.metrics import (
    PUBLISH_LAG,
    PUBLISHED,
    RELAY_FAILURES,
    RELAY_HOLE_WAITS,
)
from services.shared.config import Secret
from services.shared.messages import StoredMessage
from services.shared.metrics import REDIS_RECONNECTS
from services.shared.redis_contract import (
    MEMBERSHIPS_STALE,
    PUBLISH_BATCH,
    ROOM_SIZES_COMPLETE,
    EntryInfo,
    Publication,
    RedisKeys,
    StreamEntries,
    committed_at_ms,
    emit_packet,
    publish_batch_args,
    publish_batch_keys,
)
from services.shared.rooms import MESSAGE
from services.shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RELAY_LOCK_KEY = 0x636861745F726C79  # "chat_rly"
CURSOR_NAME = "socketio"
# A wait at a hole longer than this is logged: a write that takes so long between its
# id and its commit holds every later message back (docs/OPERATIONS.md).
SLOW_HOLE_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class RelayConfig:
    database_url: Secret
    redis_url: Secret
    keys: RedisKeys
    stream_max_len: int
    stream_max_age_seconds: int
    batch_size: int = 500
    poll_seconds: float = 1.0
    handoff_max: int = 10_000  # messages held in memory for the relay; beyond, re-read
    cursor_save_seconds: float = 0.25  # how stale the saved cursor may get (see docstring)
    standby_seconds: float = 1.0
    max_backoff_seconds: float = 5.0
    linger_seconds: float = 0.002  # the least time between two publishes (module docstring)


class OutboxRelay:
    """Owns the background task that moves committed messages to Redis."""

    def __init__(self, config: RelayConfig) -> None:
        self._config = config
        self._stream = config.keys.history_stream
        self._wake = asyncio.Event()
        # Set by NOTIFY (or a timed poll): PostgreSQL may hold rows nobody handed over.
        self._check_database = True
        self._task: asyncio.Task[None] | None = None
        self._redis = aioredis.Redis.from_url(config.redis_url.value)
        self._publish_batch = self._redis.register_script(PUBLISH_BATCH)
        self._handed_over: deque[Outboxed] = deque()
        self.is_leader = False

    def committed(self, messages: Iterable[StoredMessage]) -> None:
        """Messages this process just committed, in id order: publish without re-reading."""
        if self.is_leader:
            if len(self._handed_over) > self._config.handoff_max:
                self._handed_over.clear()  # the relay is stuck; it re-reads when it recovers
                self._check_database = True
            fresh: list[Outboxed] = list(messages)
            if fresh and self._handed_over and fresh[0].id < self._handed_over[-1].id:
                # Two batches in flight can report their commits in either order.
                fresh = sorted([*self._handed_over, *fresh], key=lambda m: m.id)
                self._handed_over.clear()
            self._handed_over.extend(fresh)
        self._wake.set()

    def _database_changed(self) -> None:
        self._check_database = True
        self._wake.set()

    def _take_handed_over(self, cursor: int) -> list[Outboxed]:
        """The handed-over messages that continue `cursor` without a hole, or []."""
        fresh = self._handed_over
        while fresh and fresh[0].id <= cursor:
            fresh.popleft()
        batch: list[Outboxed] = []
        while fresh and fresh[0].id == cursor + 1 and len(batch) < self._config.batch_size:
            cursor = fresh[0].id
            batch.append(fresh.popleft())
        return batch

    def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name="outbox-relay")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self._redis.aclose()

    async def _run_forever(self) -> None:
        backoff = 0.1
        failed = False
        while True:
            try:
                if failed:
                    REDIS_RECONNECTS.labels("api", "relay").inc()
                await self._lead_when_possible()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis or PostgreSQL away: retry, never give up
                self.is_leader = False
                RELAY_FAILURES.inc()
                failed = True
                log.warning(
                    "relay interrupted, retrying", extra={"error": repr(exc), "retry_in": backoff}
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._config.max_backoff_seconds)

    async def _lead_when_possible(self) -> None:
        conn = await asyncpg.connect(self._config.database_url.value)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY):
                await asyncio.sleep(self._config.standby_seconds)
            # The cursor may lag after a crash (see the module docstring): no fsync wait.
            await conn.execute("SET synchronous_commit TO off")
            self._handed_over.clear()
            self._check_database = True  # whatever was committed before this process led
            self.is_leader = True
            log.info("relay is active in this process")
            await conn.add_listener(NEW_MESSAGE_CHANNEL, lambda *_: self._database_changed())
            await self._relay(conn)
        finally:
            self.is_leader = False
            await conn.close()

    async def _relay(self, conn: asyncpg.Connection) -> None:
        cursor = saved = await conn.fetchval(
            "SELECT last_published_id FROM relay_state WHERE name = $1", CURSOR_NAME
        )
        saved_at = last_trim = last_mark_check = published_at = 0.0
        while True:
            await self._linger(published_at)
            self._wake.clear()
            published_from = cursor
            cursor = await self._drain(conn, cursor)
            now = time.monotonic()
            if cursor != published_from:
                published_at = now
            if cursor != saved and now - saved_at >= self._config.cursor_save_seconds:
                await conn.execute(
                    "UPDATE relay_state SET last_published_id = $2 WHERE name = $1",
                    CURSOR_NAME,
                    cursor,
                )
                saved, saved_at = cursor, now
            if now - last_trim > 10:
                await self._trim_by_age()
                last_trim = time.monotonic()
            if now - last_mark_check >= self._config.poll_seconds:
                await self._check_memberships(conn, cursor)
                last_mark_check = time.monotonic()
            # Come back in time to save a cursor that moved, even if nothing else happens.
            timeout = (
                self._config.cursor_save_seconds if cursor != saved else self._config.poll_seconds
            )
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                self._check_database = True  # the poll that catches a missed NOTIFY
            if conn.is_closed():
                raise ConnectionError("relay connection to PostgreSQL closed")

    async def _linger(self, published_at: float) -> None:
        """Let what commits within `linger_seconds` of the last publish join the next one."""
        wait = published_at + self._config.linger_seconds - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _drain(self, conn: asyncpg.Connection, cursor: int) -> int:
        """Publish everything after `cursor`; return the new cursor.

        Handed-over rows need no database read, before or after: PostgreSQL is read only
        when they do not continue the cursor, or when a NOTIFY or a timed poll says other
        processes may have committed.
        """
        while True:
            batch = self._take_handed_over(cursor)
            if not batch:
                if not self._check_database and not self._handed_over:
                    return cursor  # (rows still held here do not continue the cursor: read)
                self._check_database = False  # the read below sees every commit before it
                batch = await self._read_ready(conn, cursor)
            if not batch:
                return cursor
            await self._publish(conn, batch, prev=cursor)
            self._observe_published(batch)
            cursor = batch[-1].id
            log.debug("relayed", extra={"count": len(batch), "cursor": cursor})

    async def _read_ready(self, conn: asyncpg.Connection, cursor: int) -> list[Outboxed]:
        """What PostgreSQL holds after `cursor` that may be published now, in id order.

        Past a hole, only after the writers that could fill it have ended (module
        docstring). What stays unpublished (a limit reached, a later hole) sets
        `_check_database`, so the caller reads again at once.
        """
        size = self._config.batch_size
        read = await outbox_after(conn, cursor, size)
        ready = read.ready(cursor)
        if len(ready) < len(read.entries):
            RELAY_HOLE_WAITS.inc()
            through = read.entries[-1].id
            started = time.monotonic()
            await wait_for_entry_writers(conn, read.snapshot)
            waited = time.monotonic() - started
            if waited > SLOW_HOLE_WAIT_SECONDS:
                log.warning(
                    "relay held messages back for a slow write",
                    extra={"after": cursor, "waited_s": round(waited, 2), "seen": read.snapshot},
                )
            read = await outbox_after(conn, cursor, size)
            ready = read.ready(cursor, through)
        if len(read.entries) == size or len(ready) < len(read.entries):
            self._check_database = True
        return ready

    @staticmethod
    def _observe_published(batch: list[Outboxed]) -> None:
        # created_at is the inserting transaction's start, a few ms before its commit.
        now = time.time()
        PUBLISHED.inc(len(batch))
        for message in batch:
            PUBLISH_LAG.observe(max(0.0, now - message.created_at.timestamp()))

    async def _publish(self, conn: asyncpg.Connection, batch: list[Outboxed], prev: int) -> None:
        """Append and publish `batch` with one Lua call (membership hashes rebuilt if stale)."""
        publications = []
        for entry in batch:
            publications.append(publication(entry, prev))
            prev = entry.id
        keys = self._config.keys
        args = publish_batch_args(keys, self._config.stream_max_len, publications)
        published = await self._publish_batch(keys=publish_batch_keys(keys), args=args)
        if published == MEMBERSHIPS_STALE:
            await rebuild_memberships(conn, self._redis, keys, upto=publications[0].prev)
            await self._publish_batch(keys=publish_batch_keys(keys), args=args)

    async def _check_memberships(self, conn: asyncpg.Connection, cursor: int) -> None:
        """Rebuild the membership hashes if Redis lost them while nothing was published.

        Publishing finds out by itself (PUBLISH_BATCH refuses); this covers a quiet room,
        where gateways would otherwise wait for the mark (connections.py) until the next
        message. The room sizes are rebuilt with them, also when only they are missing
        (a deployment from before they were kept).
        """
        keys = self._config.keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.memberships_applied)
            pipe.hexists(keys.room_sizes, ROOM_SIZES_COMPLETE)
            applied, sized = await pipe.execute()
        if applied is None or int(applied) < cursor or not sized:
            await rebuild_memberships(conn, self._redis, keys, upto=cursor)

    async def _trim_by_age(self) -> None:
        """Drop history entries older than the configured age (size is capped on append)."""
        cutoff_ms = int((time.time() - self._config.stream_max_age_seconds) * 1000)
        start = "-"
        while True:
            entries = cast(
                StreamEntries, await self._redis.xrange(self._stream, min=start, count=100)
            )
            if not entries:
                return
            for entry_id, fields in entries:
                if committed_at_ms(fields) >= cutoff_ms:
                    await self._redis.xtrim(self._stream, minid=entry_id)
                    return
            if len(entries) < 100:
                # All old: keep the newest entry, the anchor that proves "nothing missed".
                await self._redis.xtrim(self._stream, minid=entries[-1][0])
                return
            start = "(" + entries[-1][0].decode()


def publication(entry: Outboxed, prev: int) -> Publication:
    """How PUBLISH_BATCH takes one message or room event, `prev` being the entry before it."""
    if isinstance(entry, RoomEvent):
        info = EntryInfo(entry.room, entry.kind, entry.subject)
        payload = entry.payload
    else:
        info = EntryInfo(entry.room, MESSAGE, None)
        payload = entry.to_wire()
    return Publication(
        entry.id,
        prev,
        orjson.dumps(payload),
        emit_packet(payload, entry.id, prev, info),
        int(entry.created_at.timestamp() * 1000),
        info,
    )


REBUILD_CHUNK = 1000


async def rebuild_memberships(
    conn: asyncpg.Connection, redis: aioredis.Redis, keys: RedisKeys, upto: int
) -> None:
    """Write every membership hash and the room sizes from PostgreSQL, then mark them applied.

    Runs when Redis lost the hashes (restarted without its data, or restored an older
    snapshot). The hashes then show the memberships as PostgreSQL has them now, which
    may already include changes after `upto`, the relay's cursor; those are published
    next and applied again in order (adding a member twice and removing a non-member
    change nothing), so the hashes end exactly right. The room sizes are counted in the
    same snapshot, so they agree with the hashes, and PUBLISH_BATCH changes a size only
    when it changes a hash. Gateways admit nobody to rooms while the mark is missing
    (they wait for it, realtime_service/connections.py), and push no presence to a room
    whose size is missing.
    """
    log.warning("rebuilding the membership hashes in Redis", extra={"upto": upto})
    await redis.delete(keys.memberships_applied, keys.room_sizes)
    async for key in redis.scan_iter(match=keys.user_rooms_pattern, count=REBUILD_CHUNK):
        await redis.delete(key)
    users = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = conn.cursor(
            "SELECT user_id::text, array_agg(room_id::text) AS rooms"
            " FROM room_members GROUP BY user_id"
        )
        pipe = redis.pipeline(transaction=False)
        async for row in rows:
            fields: dict[str, int] = dict.fromkeys(row["rooms"], 0)
            fields["@"] = upto
            pipe.hset(keys.user_rooms(row["user_id"]), mapping=fields)  # type: ignore[arg-type]
            users += 1
            if users % REBUILD_CHUNK == 0:
                await pipe.execute()
        await pipe.execute()
        await _write_room_sizes(conn, redis, keys)
    await redis.set(keys.memberships_applied, upto)
    log.warning("membership hashes rebuilt", extra={"users": users, "upto": upto})


async def _write_room_sizes(
    conn: asyncpg.Connection, redis: aioredis.Redis, keys: RedisKeys
) -> None:
    """Every room's member count as PostgreSQL has it in this transaction, then the `@` mark."""
    rows = conn.cursor(
        "SELECT room_id::text, count(*) AS members FROM room_members GROUP BY room_id"
    )
    sizes: dict[str, int] = {}
    async for row in rows:
        sizes[row["room_id"]] = row["members"]
        if len(sizes) == REBUILD_CHUNK:
            await redis.hset(keys.room_sizes, mapping=sizes)  # type: ignore[arg-type]
            sizes = {}
    sizes[ROOM_SIZES_COMPLETE] = 1
    await redis.hset(keys.room_sizes, mapping=sizes)  # type: ignore[arg-type]
