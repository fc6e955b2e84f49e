"""Queries on messages that change: edits, deletions, reactions, and room history with them.

The changes run inside the transaction of handlers/message_changes.py, which holds the
room's lock and the message-order lock shared (db/room_events.py): what a check reads
here cannot change before the change and its room event commit.

Room history (`GET /rooms/{room}/messages`) shows each message as it is now: the
current text with `edited`, a deleted message as a tombstone, the reply preview and
the reactions (docs/ROOM_STATE.md). The legacy history is db/messages.history_page.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from services.api_service.db.messages import message_from_row
from services.api_service.db.pool import DbConnection
from services.shared.messages import StoredMessage

# How many of the people who reacted with an emoji a message shows (the count is exact).
REACTION_USERS_SHOWN = 20

# A message `m` with its reply preview (the quoted message `q` gives the author).
MESSAGE_COLUMNS = (
    "m.id, m.client_id, m.owner_id, m.room_id, m.user_name, m.text, m.created_at,"
    " m.edited_at, m.deleted_at IS NOT NULL AS deleted, m.reply_to,"
    " q.owner_id AS reply_owner, q.user_name AS reply_user_name, m.reply_excerpt"
)
QUOTED_JOIN = " LEFT JOIN messages q ON q.id = m.reply_to"


def room_wire(message: StoredMessage, reactions: list[dict[str, Any]]) -> dict[str, Any]:
    """A message as the room routes show it: `reactions` only when it has some."""
    wire = message.to_room_wire()
    if reactions and not message.deleted:
        wire["reactions"] = reactions
    return wire


def _reactions(value: Any) -> list[dict[str, Any]]:
    """The jsonb aggregate of `chat_reactions` (asyncpg hands jsonb over as text)."""
    if value is None:
        return []
    decoded = json.loads(value) if isinstance(value, str) else value
    return list(decoded)


async def message_in_room(
    conn: DbConnection, room_id: str, message_id: int
) -> StoredMessage | None:
    """The message `message_id` if it is one of `room_id`'s."""
    row = await conn.fetchrow(
        f"SELECT {MESSAGE_COLUMNS} FROM messages m {QUOTED_JOIN}"
        " WHERE m.id = $1 AND m.room_id = $2::uuid",
        message_id,
        room_id,
    )
    return None if row is None else message_from_row(row)


async def message_view(conn: DbConnection, message_id: int) -> dict[str, Any]:
    """The message as the room routes show it, with its reactions."""
    row = await conn.fetchrow(
        f"SELECT {MESSAGE_COLUMNS}, chat_reactions(m.id, $2) AS reactions"
        f" FROM messages m {QUOTED_JOIN} WHERE m.id = $1",
        message_id,
        REACTION_USERS_SHOWN,
    )
    assert row is not None  # messages are never removed, only emptied
    return room_wire(message_from_row(row), _reactions(row["reactions"]))


async def edit_message(conn: DbConnection, message_id: int, text: str) -> datetime:
    """Replace the text; the time of the edit. Replies keep their excerpt of the old text."""
    edited: datetime = await conn.fetchval(
        "UPDATE messages SET text = $2, edited_at = now() WHERE id = $1 RETURNING edited_at",
        message_id,
        text,
    )
    return edited


async def delete_message(conn: DbConnection, message_id: int) -> None:
    """Leave a tombstone: no text, no reactions, and no excerpt of it in the replies to it.

    One statement; the row stays, so the history keeps its ids and order.
    """
    await conn.execute(
        "WITH emptied AS ("
        "  UPDATE messages SET deleted_at = now(), text = '',"
        "   reply_excerpt = CASE WHEN reply_to IS NULL THEN NULL ELSE '' END"
        "  WHERE id = $1),"
        " quotes AS ("
        "  UPDATE messages SET reply_excerpt = '' WHERE reply_to = $1 AND reply_excerpt <> ''),"
        " reactions AS (DELETE FROM reactions WHERE message_id = $1)"
        " SELECT 1",
        message_id,
    )


async def emoji_in_use(conn: DbConnection, message_id: int, emoji: str) -> tuple[int, bool]:
    """How many distinct emoji the message has, and whether `emoji` is one of them."""
    row = await conn.fetchrow(
        "SELECT count(DISTINCT emoji) AS distinct_emoji, coalesce(bool_or(emoji = $2), false)"
        " AS present FROM reactions WHERE message_id = $1",
        message_id,
        emoji,
    )
    assert row is not None  # an aggregate always answers one row
    return row["distinct_emoji"], row["present"]


async def add_reaction(conn: DbConnection, message_id: int, emoji: str, user_id: str) -> bool:
    """True when added; False when `user_id` had reacted with `emoji` already."""
    added = await conn.fetchval(
        "INSERT INTO reactions (message_id, emoji, user_id) VALUES ($1, $2, $3::uuid)"
        " ON CONFLICT DO NOTHING RETURNING true",
        message_id,
        emoji,
        user_id,
    )
    return bool(added)


async def remove_reaction(conn: DbConnection, message_id: int, emoji: str, user_id: str) -> bool:
    """True when removed; False when there was no such reaction."""
    removed = await conn.fetchval(
        "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3::uuid"
        " RETURNING true",
        message_id,
        emoji,
        user_id,
    )
    return bool(removed)


async def reactions_of(conn: DbConnection, message_id: int) -> list[dict[str, Any]]:
    """The whole aggregate: per emoji its count and the first people who used it."""
    value = await conn.fetchval("SELECT chat_reactions($1, $2)", message_id, REACTION_USERS_SHOWN)
    return _reactions(value)


async def room_page(
    conn: DbConnection,
    room_id: str,
    *,
    limit: int,
    before: int | None = None,
    after: int | None = None,
) -> list[dict[str, Any]]:
    """A page of `room_id`'s history as the room routes show it, oldest first.

    The page as db/messages.history_page cuts it (newest `limit`, or the oldest `limit`
    after `after`), tombstones included; each message with its reply preview (one probe
    of the primary key per reply) and its reactions (one probe of the reactions' key).
    Whether the caller may read the room is the caller's check.
    """
    if after is not None:
        page = (
            "SELECT * FROM messages m WHERE m.room_id = $1::uuid AND m.id > $3"
            " AND ($4::bigint IS NULL OR m.id < $4) ORDER BY m.id ASC LIMIT $5"
        )
        args: tuple[object, ...] = (room_id, REACTION_USERS_SHOWN, after, before, limit)
    else:
        page = (
            "SELECT * FROM messages m WHERE m.room_id = $1::uuid"
            " AND ($3::bigint IS NULL OR m.id < $3) ORDER BY m.id DESC LIMIT $4"
        )
        args = (room_id, REACTION_USERS_SHOWN, before, limit)
    rows = await conn.fetch(
        f"SELECT {MESSAGE_COLUMNS},"
        " CASE WHEN m.deleted_at IS NULL AND EXISTS"
        "  (SELECT 1 FROM reactions x WHERE x.message_id = m.id)"
        "  THEN chat_reactions(m.id, $2) END AS reactions"
        f" FROM ({page}) m {QUOTED_JOIN} ORDER BY m.id ASC",
        *args,
    )
    return [_wire(row) for row in rows]


def _wire(row: asyncpg.Record) -> dict[str, Any]:
    return room_wire(message_from_row(row), _reactions(row["reactions"]))
