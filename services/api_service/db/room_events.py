"""Room events: membership changes, room updates and changes of messages, in the message order.

A room event is written in the same transaction as the change it announces, after
`lock_message_order`: it takes the next id of the messages' sequence while holding the
lock every post takes, so ids stay in commit order across messages and events (see
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
    """Take the message-order lock for the rest of the current transaction.

    Take it first, before reading what the change depends on: a membership check then
    sees every post and change committed before it, and nothing commits in between.
    """
    await conn.execute("SELECT pg_advisory_xact_lock($1)", MESSAGE_ORDER_LOCK_KEY)


async def insert_room_event(
    conn: DbConnection,
    room: str,
    kind: str,
    subject: str | None,
    payload: dict[str, Any],
) -> RoomEvent:
    """Store one event; the caller's transaction must hold the message-order lock."""
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


async def outbox_after(conn: DbConnection, after: int, limit: int) -> list[Outboxed]:
    """Up to `limit` messages and room events with id > `after`, in id (= commit) order.

    A message goes out as it is read here (with its reply preview); its edits and its
    deletion are room events of their own that follow it, so a client that applies
    them in order ends with the message's current state either way.

    Both tables take ids from one sequence under one lock, so together they have no
    hole the relay could skip: everything after its cursor is exactly what it has not
    published.
    """
    rows = await conn.fetch(  # one statement: one snapshot of both tables
        "SELECT * FROM ("
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
    return [
        message_from_row(row) if row["kind"] == MESSAGE else event_from_row(row) for row in rows
    ]
