"""Queries on messages: the ordered insert and history pages.

Why a lock around the insert: a sequence hands out ids when a row is inserted, not
when it commits. Two writers can take ids 7 and 8 and commit 8 first; a reader of the
room that sees 8 and then asks for `after=8` would never see 7. Taking the room's
transaction-level advisory lock before the insert serializes "take an id, commit" per
room across every API process (migration 0009), so a room's ids become visible in
increasing order and its `after=<_id>` never skips. Posts to different rooms do not
wait for each other; the outbox relay restores one order across rooms (relay.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.api_service.db.pool import DbConnection
from services.shared.messages import ReplyPreview, StoredMessage
from services.shared.rooms import GLOBAL_ROOM_ID

MESSAGE_ORDER_LOCK_KEY = 0x636861745F6D7367  # "chat_msg"
NEW_MESSAGE_CHANNEL = "chat_new_message"  # LISTEN/NOTIFY channel
COLUMNS = "id, client_id, owner_id, room_id, user_name, text, created_at"


@dataclass(frozen=True)
class NewMessage:
    client_id: str
    owner: str
    user_name: str
    text: str
    room: str = GLOBAL_ROOM_ID
    reply_to: int | None = None  # the `_id` of the message of the same room it answers


@dataclass(frozen=True)
class InsertResult:
    message: StoredMessage
    created: bool  # False when this was a retry of an already stored message


class Refused(Exception):
    """The store function refused this message; nothing was stored for it.

    The other messages of its batch were stored: one refused row never fails a batch.
    """

    reason = "refused"


class OwnerMissing(Refused):
    """The message's author has no account (deleted since the token was issued)."""

    reason = "no_account"


class NotMember(Refused):
    """The room does not exist, or the author is not (or no longer) a member of it."""

    reason = "not_member"


class RoomArchived(Refused):
    """The room is archived: its history stays, nothing new is posted to it."""

    reason = "archived"


class ReplyNotFound(Refused):
    """The message it replies to is not a message of the same room."""

    reason = "reply_not_found"


class ReplyDeleted(Refused):
    """The message it replies to was deleted."""

    reason = "reply_deleted"


REFUSALS: dict[str, type[Refused]] = {
    cls.reason: cls for cls in (OwnerMissing, NotMember, RoomArchived, ReplyNotFound, ReplyDeleted)
}


def message_from_row(row: asyncpg.Record) -> StoredMessage:
    """A message from a row of `messages` (with the reply's columns, see `reply_from_row`)."""
    return StoredMessage(
        id=row["id"],
        client_id=str(row["client_id"]),
        owner=str(row["owner_id"]),
        user_name=row["user_name"],
        text=row["text"],
        created_at=row["created_at"],
        room=str(row["room_id"]),
        reply_to=reply_from_row(row),
        edited_at=row.get("edited_at"),
        deleted=bool(row.get("deleted")),
    )


def reply_from_row(row: asyncpg.Record) -> ReplyPreview | None:
    """The reply preview of a row, None when it is no reply.

    The row has `reply_to` and `reply_excerpt` of the message, and `reply_owner` and
    `reply_user_name` of the quoted message, joined for its author.
    """
    if row.get("reply_to") is None:
        return None
    return ReplyPreview(
        id=row["reply_to"],
        owner=str(row["reply_owner"]),
        user_name=row["reply_user_name"],
        excerpt=row["reply_excerpt"] or "",
    )


async def insert_messages(
    conn: DbConnection,
    batch: Sequence[NewMessage],
    notify_channel: str | None = NEW_MESSAGE_CHANNEL,
) -> list[InsertResult | Refused]:
    """Store each message once per (owner, client id); results in the order of `batch`.

    One statement, `chat_store_messages` (migration 0009), does the whole batch: the
    rooms' locks, the checks of each row, insert, lookup of already stored keys and the NOTIFY
    for the relay. A message the function refuses (its author has no account, is not a
    member of its room, the room is archived, or the message it replies to is not one
    of the room or was deleted) is not stored and comes back as the matching `Refused`,
    so one such request never fails the rest of the batch. Call it
    outside an explicit transaction: the statement is then its own transaction, one
    round trip and one commit. A message whose (owner, client id) is already stored, or
    appears earlier in the same batch, comes back as that stored message with
    `created=False`. `notify_channel` None sends no NOTIFY (the caller's own process
    relays these rows).
    """
    rows = await conn.fetch(
        "SELECT * FROM chat_store_messages("
        "$1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bigint[], $7, $8)",
        [m.client_id for m in batch],
        [m.owner for m in batch],
        [m.room for m in batch],
        [m.user_name for m in batch],
        [m.text for m in batch],
        [m.reply_to for m in batch],
        MESSAGE_ORDER_LOCK_KEY,
        notify_channel,
    )
    new: dict[tuple[str, str], StoredMessage] = {}
    existing: dict[tuple[str, str], StoredMessage] = {}
    refused: dict[tuple[str, str], str] = {}
    for row in rows:
        if row["id"] is None:
            refused[(str(row["owner_id"]), str(row["client_id"]))] = row["refused"]
            continue
        message = message_from_row(row)
        (new if row["created"] else existing)[_key(message)] = message
    results: list[InsertResult | Refused] = []
    for m in batch:
        key = (m.owner, m.client_id)
        if key in refused:
            results.append(REFUSALS.get(refused[key], Refused)(m.owner))
        elif key in new:
            first = new.pop(key)
            results.append(InsertResult(first, created=True))  # first of its key
            existing[key] = first
        else:
            results.append(InsertResult(existing[key], created=False))
    return results


def _key(message: StoredMessage) -> tuple[str, str]:
    return message.owner, message.client_id


async def messages_after(conn: DbConnection, after: int, limit: int) -> list[StoredMessage]:
    """Up to `limit` messages (of every room) with id > `after`, in id (= commit) order."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM messages WHERE id > $1 ORDER BY id ASC LIMIT $2", after, limit
    )
    return [message_from_row(row) for row in rows]


# The wire shape (StoredMessage.to_wire) built by the query: decoding text is cheaper
# than uuid and bigint, and no intermediate objects are made per row.
WIRE_COLUMNS = (
    'm.id::text AS "_id", m.client_id::text AS id, m.owner_id::text AS owner,'
    ' m.user_name AS "userName", m.text, m.created_at AS "createdAt"'
)


async def history_page(
    conn: DbConnection,
    reader: str,
    *,
    limit: int,
    before: int | None = None,
    after: int | None = None,
    room: str = GLOBAL_ROOM_ID,
) -> list[dict[str, Any]] | None:
    """A page of `room`'s history as wire objects, oldest first; None when `reader` has no account.

    Whether `reader` may read `room` is the caller's check (the global room: everyone).
    This is the legacy shape (`GET /messages`): the current text of edited messages,
    no deleted ones, nothing about replies or reactions.

    Without `after`, the newest `limit` messages (older than `before` if given): what a
    chat window shows and "load older" pages back through. With `after`, the oldest
    `limit` messages after it: a catch-up that continues from the last one seen.

    The reader's account is checked in the same statement (the page is joined to it), so
    a deleted account's token reads nothing and costs no extra round trip: no row at all
    means no account, one row of NULLs means an empty page.
    """
    if after is not None:
        page = (
            "SELECT * FROM messages m WHERE m.room_id = $5::uuid AND m.id > $2"
            " AND ($3::bigint IS NULL OR m.id < $3) AND m.deleted_at IS NULL"
            " ORDER BY m.id ASC LIMIT $4"
        )
        args: tuple[object, ...] = (reader, after, before, limit, room)
        order = "ASC"
    else:
        page = (
            "SELECT * FROM messages m WHERE m.room_id = $4::uuid"
            " AND ($2::bigint IS NULL OR m.id < $2) AND m.deleted_at IS NULL"
            " ORDER BY m.id DESC LIMIT $3"
        )
        args = (reader, before, limit, room)
        order = "DESC"
    rows = await conn.fetch(
        f"SELECT {WIRE_COLUMNS} FROM users u LEFT JOIN LATERAL ({page}) m ON true"
        f" WHERE u.id = $1::uuid ORDER BY m.id {order}",
        *args,
    )
    if not rows:
        return None
    if rows[0]["_id"] is None:
        return []
    wire = [dict(row) for row in rows]
    return wire if order == "ASC" else wire[::-1]
