"""Room events: membership changes, room updates and changes of messages, in the message order.

A room event is written in the same transaction as the change it announces, after the
change took its locks: `lock_message_order` for a membership change or room update,
which waits for every write in flight and holds off new ones, or `lock_rooms` for an
edit, deletion or reaction, which only excludes other writes to the same room (posts
take the same, migration 0009). The event takes the next id of the messages' sequence,
so ids of one room stay in commit order across messages and events (see
db/messages.py), and the relay publishes both as one stream (`outbox_after`). The NOTIFY
sent at commit wakes the relay, in whichever process leads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.api_service.db.messages import (
    MESSAGE_ORDER_LOCK_KEY,
    NEW_MESSAGE_CHANNEL,
    message_from_row,
)
from services.api_service.db.pool import DbConnection
from services.shared.messages import StoredMessage
from services.shared.rooms import MESSAGE, ROOM_EVENT_KINDS


@dataclass(frozen=True)
class RoomEvent:
    """One membership change or room update, as committed."""

    id: int
    room: str
    kind: str  # one of services.shared.rooms.ROOM_EVENT_KINDS
    subject: str | None  # the member concerned (joined, left, role); else None
    payload: dict[str, Any]  # what clients receive, without `_id` (docs/ROOMS.md)
    created_at: datetime


async def lock_message_order(conn: DbConnection) -> None:
    """Take the message-order lock, exclusive, for the rest of the current transaction.

    For membership changes, room updates and account deletions. Take it first, before
    reading what the change depends on: it waits for every write to any room in flight
    (they hold it shared) and holds off new ones, so a check then sees every post and
    change committed before it, and nothing commits in between.
    """
    await conn.execute("SELECT pg_advisory_xact_lock($1)", MESSAGE_ORDER_LOCK_KEY)


async def lock_rooms(conn: DbConnection, rooms: list[str]) -> None:
    """Take the locks of a write into `rooms` (a post, edit, deletion or reaction).

    The message-order lock shared, so that no membership change runs meanwhile, and each
    room's own lock exclusive (migration 0009, `chat_lock_rooms`), so that the room's ids
    become visible in commit order while writes to other rooms go on beside it.
    """
    await conn.execute("SELECT chat_lock_rooms($1::uuid[], $2)", rooms, MESSAGE_ORDER_LOCK_KEY)


async def insert_room_event(
    conn: DbConnection,
    room: str,
    kind: str,
    subject: str | None,
    payload: dict[str, Any],
) -> RoomEvent:
    """Store one event; the caller's transaction must hold the lock of its kind of change."""
    if kind not in ROOM_EVENT_KINDS:
        raise ValueError(f"unknown room event kind {kind!r}")
    row = await conn.fetchrow(
        "INSERT INTO room_events (room_id, kind, subject, payload)"
        " VALUES ($1::uuid, $2, $3::uuid, $4::jsonb)"
        " RETURNING id, room_id, kind, subject, payload, created_at",
        room,
        kind,
        subject,
        json.dumps(payload),
    )
    assert row is not None  # INSERT .. RETURNING returns the row
    await conn.execute("SELECT pg_notify($1, $2)", NEW_MESSAGE_CHANNEL, str(row["id"]))
    return event_from_row(row)


def event_from_row(row: asyncpg.Record) -> RoomEvent:
    payload = row["payload"]
    return RoomEvent(
        id=row["id"],
        room=str(row["room_id"]),
        kind=row["kind"],
        subject=None if row["subject"] is None else str(row["subject"]),
        payload=json.loads(payload) if isinstance(payload, str) else payload,
        created_at=row["created_at"],
    )


Outboxed = StoredMessage | RoomEvent


@dataclass(frozen=True)
class OutboxRead:
    """What one read of the outbox saw: its entries, and the snapshot it saw them in."""

    entries: list[Outboxed]
    snapshot: str  # pg_current_snapshot() of the read, as text ("" when nothing was read)

    def ready(self, cursor: int, through: int = 0) -> list[Outboxed]:
        """The entries that may be published after `cursor`: up to the first hole.

        An id between two committed ones may still be in flight in another room's
        transaction, so an entry after a hole waits until `chat_wait_for_entry_writers`
        has shown the hole final. Holes at or below `through` are known final: every
        entry up to it that is not here was never committed.
        """
        ready: list[Outboxed] = []
        for entry in self.entries:
            if entry.id != cursor + 1 and entry.id > through:
                break
            ready.append(entry)
            cursor = entry.id
        return ready


async def outbox_after(conn: DbConnection, after: int, limit: int) -> OutboxRead:
    """Up to `limit` messages and room events with id > `after`, in id order.

    A message goes out as it is read here (with its reply preview); its edits and its
    deletion are room events of their own that follow it, so a client that applies
    them in order ends with the message's current state either way.

    Both tables take ids from one sequence; ids of one room become visible in order,
    but an id of another room may still be in flight below the newest one read. The
    snapshot of the read tells `wait_for_entry_writers` whom to wait for before the
    relay publishes past such a hole (`OutboxRead.ready`).
    """
    rows = await conn.fetch(  # one statement: one snapshot of both tables
        "SELECT entries.*, pg_current_snapshot()::text AS snapshot FROM ("
        " (SELECT m.id, 'message' AS kind, m.room_id, m.client_id, m.owner_id, m.user_name,"
        "         m.text, m.created_at, NULL::uuid AS subject, NULL::jsonb AS payload,"
        "         m.reply_to, q.owner_id AS reply_owner, q.user_name AS reply_user_name,"
        "         m.reply_excerpt"
        "  FROM messages m LEFT JOIN messages q ON q.id = m.reply_to"
        "  WHERE m.id > $1 ORDER BY m.id ASC LIMIT $2)"
        " UNION ALL"
        " (SELECT id, kind, room_id, NULL, NULL, NULL, NULL, created_at, subject, payload,"
        "         NULL, NULL, NULL, NULL"
        "  FROM room_events WHERE id > $1 ORDER BY id ASC LIMIT $2)"
        ") entries ORDER BY id ASC LIMIT $2",
        after,
        limit,
    )
    entries: list[Outboxed] = [
        message_from_row(row) if row["kind"] == MESSAGE else event_from_row(row) for row in rows
    ]
    return OutboxRead(entries, rows[0]["snapshot"] if rows else "")


async def wait_for_entry_writers(conn: DbConnection, snapshot: str) -> None:
    """Return once every transaction that was taking ids in `snapshot` has ended.

    A hole below an entry committed in that snapshot can only be filled by one of them
    (migration 0009), so a read after this one sees the hole filled, or it never will be.
    """
    await conn.execute("SELECT chat_wait_for_entry_writers($1::text::pg_snapshot)", snapshot)
