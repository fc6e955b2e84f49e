"""Queries on read markers, unread counts and receipts (docs/ROOM_STATE.md, "Read state").

A marker is a row of `room_reads` (migration 0008): the `_id` of the newest message of
the room the user has read. None of these queries takes the message-order lock: a
marker is no room event, and a busy room's posts must not wait behind its readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.api_service.db.pool import DbConnection
from services.api_service.db.rooms import ROOM_COLUMNS, RoomRow, room_or_none
from services.shared.rooms import GLOBAL_ROOM_ID


@dataclass(frozen=True)
class ReadTarget:
    """What setting a marker depends on, read in one round trip."""

    send_receipts: bool  # the caller shows their markers to others
    room: RoomRow | None
    role: str | None  # the caller's role in the room; None: not a member
    is_message: bool  # the marker names a message of this room


async def read_target(
    conn: DbConnection, user_id: str, room_id: str, message_id: int
) -> ReadTarget | None:
    """The caller's setting, the room, their role and whether `message_id` is in the room.

    None when the caller's account no longer exists.
    """
    row = await conn.fetchrow(
        f"SELECT u.send_receipts, {ROOM_COLUMNS},"
        f" CASE WHEN r.id = '{GLOBAL_ROOM_ID}' THEN 'member' ELSE me.role END AS role,"
        " EXISTS (SELECT 1 FROM messages m WHERE m.room_id = r.id AND m.id = $3) AS is_message"
        " FROM users u"
        " LEFT JOIN rooms r ON r.id = $2::uuid"
        " LEFT JOIN room_members me ON me.room_id = r.id AND me.user_id = u.id"
        " WHERE u.id = $1::uuid",
        user_id,
        room_id,
        message_id,
    )
    if row is None:
        return None
    return ReadTarget(row["send_receipts"], room_or_none(row), row["role"], row["is_message"])


async def advance_marker(conn: DbConnection, user_id: str, room_id: str, last_read: int) -> bool:
    """Move the marker forward to `last_read`; False when it was there or further already.

    One statement: concurrent requests of the same user (two devices) each either move
    it or find it further, never move it back.
    """
    moved = await conn.fetchval(
        "INSERT INTO room_reads AS rr (user_id, room_id, last_read)"
        " VALUES ($1::uuid, $2::uuid, $3)"
        " ON CONFLICT (user_id, room_id) DO UPDATE"
        "  SET last_read = excluded.last_read, updated_at = now()"
        "  WHERE rr.last_read < excluded.last_read"
        " RETURNING true",
        user_id,
        room_id,
        last_read,
    )
    return bool(moved)


@dataclass(frozen=True)
class ReadState:
    """The caller's marker in one room and what is unread after it."""

    last_read: int | None
    unread: int
    mentions: int

    def wire(self) -> dict[str, Any]:
        return {
            "lastRead": None if self.last_read is None else str(self.last_read),
            "unread": self.unread,
            "mentions": self.mentions,
        }


NOTHING_READ = ReadState(None, 0, 0)


async def read_states(
    conn: DbConnection, user_id: str, room_ids: Sequence[str], mention: str, cap: int
) -> dict[str, ReadState]:
    """The caller's read state in each of `room_ids` (their rooms), in one statement.

    Unread: the messages after the marker by others, counted up to `cap`, so that a
    room costs at most `cap` entries of messages(room_id, id) from its marker however
    long ago its reader last looked; mentions: those of them whose text contains
    `mention` (as stored, i.e. sanitized), case-insensitive. A room without a marker
    counts from its beginning.
    """
    rows = await conn.fetch(
        "SELECT r.room_id, rr.last_read, c.unread, c.mentions"
        " FROM unnest($2::uuid[]) AS r(room_id)"
        " LEFT JOIN room_reads rr ON rr.user_id = $1::uuid AND rr.room_id = r.room_id"
        " CROSS JOIN LATERAL ("
        "  SELECT count(*) AS unread,"
        "   count(*) FILTER (WHERE strpos(lower(after.text), lower($3)) > 0) AS mentions"
        "  FROM (SELECT m.text FROM messages m"
        "   WHERE m.room_id = r.room_id AND m.id > coalesce(rr.last_read, 0)"
        "    AND m.owner_id IS DISTINCT FROM $1::uuid"
        "   ORDER BY m.id LIMIT $4) after"
        " ) c",
        user_id,
        list(room_ids),
        mention,
        cap,
    )
    return {
        str(row["room_id"]): ReadState(row["last_read"], row["unread"], row["mentions"])
        for row in rows
    }


@dataclass(frozen=True)
class Receipt:
    user: str
    last_read: int

    def wire(self) -> dict[str, str]:
        return {"user": self.user, "lastRead": str(self.last_read)}


async def receipts(conn: DbConnection, room_id: str, viewer: str, limit: int) -> list[Receipt]:
    """The markers of the room's other members who send receipts, furthest first."""
    rows = await conn.fetch(
        "SELECT rr.user_id, rr.last_read FROM room_reads rr"
        " JOIN room_members m ON m.room_id = rr.room_id AND m.user_id = rr.user_id"
        " JOIN users u ON u.id = rr.user_id AND u.send_receipts"
        " WHERE rr.room_id = $1::uuid AND rr.user_id <> $2::uuid"
        " ORDER BY rr.last_read DESC, rr.user_id LIMIT $3",
        room_id,
        viewer,
        limit,
    )
    return [Receipt(str(row["user_id"]), row["last_read"]) for row in rows]
