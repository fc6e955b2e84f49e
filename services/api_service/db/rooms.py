"""Queries on rooms and memberships (docs/ROOMS.md).

Reads stand alone. Changes are made by handlers/rooms.py inside one transaction that
takes the message-order lock first, exclusive (db/room_events.py), so that what a check
reads here cannot change before the change and its room event commit.

The global room has no membership rows: every account is a member of it. The queries
that list or count members answer for it from `users`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.api_service.db.pool import DbConnection
from services.api_service.db.users import DELETED_AUTHOR_NAME
from services.shared.messages import ReplyPreview, StoredMessage
from services.shared.names import plain_name
from services.shared.rooms import GLOBAL_ROOM_ID

OWNER, ADMIN, MEMBER = "owner", "admin", "member"


@dataclass(frozen=True)
class RoomRow:
    """A room as stored."""

    id: str
    kind: str  # public | private | direct
    name: str
    topic: str
    archived: bool
    created_at: datetime
    direct_key: str | None
    receipts: bool = False  # the group room's setting (docs/ROOM_STATE.md, "Read state")

    @property
    def is_global(self) -> bool:
        return self.id == GLOBAL_ROOM_ID

    def pair(self) -> tuple[str, str]:
        """The two people of a direct room."""
        assert self.direct_key is not None
        first, second = self.direct_key.split(":")
        return first, second

    def peer_of(self, user_id: str) -> str:
        first, second = self.pair()
        return second if first == user_id else first

    @property
    def shows_receipts(self) -> bool:
        """Direct rooms always show read receipts; group rooms when turned on."""
        return self.kind == "direct" or self.receipts

    def summary(self) -> dict[str, Any]:
        """What a `roomUpdated` event carries."""
        return {
            "id": self.id,
            "name": self.name,
            "topic": self.topic,
            "archived": self.archived,
            "receipts": self.shows_receipts,
        }


@dataclass(frozen=True)
class Person:
    id: str
    name: str

    def wire(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class MemberRow:
    id: str
    name: str
    role: str
    joined_at: datetime

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "joinedAt": self.joined_at.isoformat(),
        }


def direct_key(a: str, b: str) -> str:
    """The unique key of the direct room of two people: their ids in order."""
    return ":".join(sorted((a, b)))


def room_wire(
    room: RoomRow,
    *,
    role: str | None,
    member_count: int,
    peer: Person | None,
    last_message: dict[str, Any] | None | bool = False,
) -> dict[str, Any]:
    """The Room object of the API; `last_message` False leaves `lastMessage` out."""
    wire: dict[str, Any] = {
        "id": room.id,
        "kind": room.kind,
        "name": peer.name if peer is not None else room.name,
        "topic": room.topic,
        "archived": room.archived,
        "receipts": room.shows_receipts,
        "createdAt": room.created_at.isoformat(),
        "memberCount": member_count,
        "role": role,
        "peer": None if peer is None else peer.wire(),
    }
    if last_message is not False:
        wire["lastMessage"] = last_message
    return wire


def _room(row: asyncpg.Record) -> RoomRow:
    return RoomRow(
        id=str(row["id"]),
        kind=row["kind"],
        name=row["name"],
        topic=row["topic"],
        archived=row["archived"],
        created_at=row["created_at"],
        direct_key=row["direct_key"],
        receipts=row["receipts"],
    )


def room_or_none(row: asyncpg.Record) -> RoomRow | None:
    """The room of a row with ROOM_COLUMNS from a LEFT JOIN (None: no such room)."""
    return None if row["id"] is None else _room(row)


ROOM_COLUMNS = (
    "r.id, r.kind, r.name, r.topic, r.archived_at IS NOT NULL AS archived, r.created_at,"
    " r.direct_key, r.receipts"
)
# The caller's ($2) role, the member count, the peer of a direct room.
VIEW_COLUMNS = (
    f"{ROOM_COLUMNS},"
    f" CASE WHEN r.id = '{GLOBAL_ROOM_ID}' THEN 'member' ELSE me.role END AS role,"
    f" CASE WHEN r.id = '{GLOBAL_ROOM_ID}' THEN (SELECT count(*) FROM users)"
    "  ELSE (SELECT count(*) FROM room_members c WHERE c.room_id = r.id) END AS member_count,"
    " peer.id AS peer_id, peer.name AS peer_name"
)


def peer_join(viewer: str) -> str:
    """The caller's membership row (`me`) and the other person of a direct room (`peer`).

    `viewer` is the placeholder of the caller's id, e.g. "$2".
    """
    return (
        f" LEFT JOIN room_members me ON me.room_id = r.id AND me.user_id = {viewer}::uuid"
        " LEFT JOIN LATERAL (SELECT p.id, p.name FROM users p WHERE r.kind = 'direct'"
        f"  AND p.id = CASE WHEN split_part(r.direct_key, ':', 1) = {viewer}::uuid::text"
        "   THEN split_part(r.direct_key, ':', 2) ELSE split_part(r.direct_key, ':', 1) END::uuid"
        " ) peer ON true"
    )


# The newest message of r, through messages(room_id, id): one index probe per room (and
# one for the message it replies to, if it is a reply).
LAST_MESSAGE_JOIN = (
    " LEFT JOIN LATERAL (SELECT lm.id AS lm_id, lm.client_id, lm.owner_id, lm.room_id,"
    "  lm.user_name, lm.text, lm.created_at AS lm_created_at, lm.edited_at AS lm_edited_at,"
    "  lm.deleted_at IS NOT NULL AS lm_deleted, lm.reply_to AS lm_reply_to,"
    "  lq.owner_id AS lm_reply_owner, lq.user_name AS lm_reply_user_name,"
    "  lm.reply_excerpt AS lm_reply_excerpt"
    "  FROM messages lm LEFT JOIN messages lq ON lq.id = lm.reply_to"
    "  WHERE lm.room_id = r.id ORDER BY lm.id DESC LIMIT 1) last ON true"
)


def _peer(row: asyncpg.Record, room: RoomRow, viewer: str) -> Person | None:
    if room.kind != "direct":
        return None
    if row["peer_id"] is None:  # the other person deleted their account
        return Person(room.peer_of(viewer), DELETED_AUTHOR_NAME)
    return Person(str(row["peer_id"]), plain_name(row["peer_name"]))


def _last_message(row: asyncpg.Record) -> dict[str, Any] | None:
    """The newest message as history shows it (edited, a tombstone, a reply), no reactions."""
    if row["lm_id"] is None:
        return None
    reply = None
    if row["lm_reply_to"] is not None:
        reply = ReplyPreview(
            id=row["lm_reply_to"],
            owner=str(row["lm_reply_owner"]),
            user_name=row["lm_reply_user_name"],
            excerpt=row["lm_reply_excerpt"] or "",
        )
    return StoredMessage(
        id=row["lm_id"],
        client_id=str(row["client_id"]),
        owner=str(row["owner_id"]),
        user_name=row["user_name"],
        text=row["text"],
        created_at=row["lm_created_at"],
        room=str(row["room_id"]),
        reply_to=reply,
        edited_at=row["lm_edited_at"],
        deleted=row["lm_deleted"],
    ).to_room_wire()


@dataclass(frozen=True)
class RoomView:
    """A room with what the caller needs to see it: role, member count, peer, newest message."""

    room: RoomRow
    role: str | None
    member_count: int
    peer: Person | None
    last_message: dict[str, Any] | None

    def wire(self, *, with_last_message: bool = True) -> dict[str, Any]:
        return room_wire(
            self.room,
            role=self.role,
            member_count=self.member_count,
            peer=self.peer,
            last_message=self.last_message if with_last_message else False,
        )


def _view(row: asyncpg.Record, viewer: str) -> RoomView:
    room = _room(row)
    return RoomView(
        room=room,
        role=row["role"],
        member_count=row["member_count"],
        peer=_peer(row, room, viewer),
        last_message=_last_message(row) if "lm_id" in row else None,
    )


async def room_view(conn: DbConnection, room_id: str, viewer: str) -> RoomView | None:
    """`room_id` as `viewer` sees it (whether they may is the caller's check)."""
    row = await conn.fetchrow(
        f"SELECT {VIEW_COLUMNS}, last.* FROM rooms r {peer_join('$2')} {LAST_MESSAGE_JOIN}"
        " WHERE r.id = $1::uuid",
        room_id,
        viewer,
    )
    return None if row is None else _view(row, viewer)


async def my_rooms(conn: DbConnection, user_id: str) -> list[RoomView]:
    """The global room, then every room of `user_id`, newest activity first.

    Activity is the newest message, or joining when that is later (a room one was just
    added to comes first). One statement: the newest message of each room is one probe
    of messages(room_id, id).
    """
    rows = await conn.fetch(
        f"SELECT {VIEW_COLUMNS}, last.* FROM rooms r {peer_join('$1')} {LAST_MESSAGE_JOIN}"
        f" WHERE r.id = '{GLOBAL_ROOM_ID}' OR me.user_id IS NOT NULL"
        f" ORDER BY r.id = '{GLOBAL_ROOM_ID}' DESC,"
        "  greatest(last.lm_created_at, me.joined_at) DESC NULLS LAST, r.id",
        user_id,
    )
    return [_view(row, user_id) for row in rows]


def like_escaped(text: str) -> str:
    """`text` with LIKE's wildcards (and its escape character) taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def public_rooms(
    conn: DbConnection,
    viewer: str,
    *,
    contains: str | None,
    limit: int,
    after: tuple[str, str] | None,
) -> tuple[list[RoomView], tuple[str, str] | None]:
    """A page of public rooms by name; the position after its last room if there are more."""
    rows = await conn.fetch(
        f"SELECT {VIEW_COLUMNS}, lower(r.name) AS sort_name FROM rooms r {peer_join('$2')}"
        " WHERE r.kind = 'public'"
        "  AND ($3::text IS NULL OR lower(r.name) LIKE '%' || lower($3) || '%')"
        "  AND ($4::text IS NULL OR (lower(r.name), r.id) > ($4, $5::uuid))"
        " ORDER BY lower(r.name), r.id LIMIT $1",
        limit + 1,
        viewer,
        None if contains is None else like_escaped(contains),
        None if after is None else after[0],
        None if after is None else after[1],
    )
    page = [_view(row, viewer) for row in rows[:limit]]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return page, None if last is None else (last["sort_name"], str(last["id"]))


async def member_page(
    conn: DbConnection, room_id: str, *, limit: int, after: tuple[int, str, str] | None
) -> tuple[list[MemberRow], tuple[int, str, str] | None]:
    """A page of the members, owner first then by name; the position after it if there are more.

    The global room's members are every account.
    """
    position = (None, None, None) if after is None else after
    if room_id == GLOBAL_ROOM_ID:
        source = (
            "SELECT u.id, u.name, 'member' AS role, u.created_at AS joined_at, 1 AS rank"
            " FROM users u"
        )
        args: tuple[object, ...] = (limit + 1, *position)
    else:
        source = (
            "SELECT u.id, u.name, m.role, m.joined_at,"
            " CASE m.role WHEN 'owner' THEN 0 ELSE 1 END AS rank"
            " FROM room_members m JOIN users u ON u.id = m.user_id WHERE m.room_id = $5::uuid"
        )
        args = (limit + 1, *position, room_id)
    rows = await conn.fetch(
        f"SELECT id, name, role, joined_at, rank, lower(name) AS sort_name FROM ({source}) s"
        " WHERE $2::int IS NULL OR (rank, lower(name), id) > ($2, $3, $4::uuid)"
        " ORDER BY rank, lower(name), id LIMIT $1",
        *args,
    )
    page = [
        MemberRow(str(r["id"]), plain_name(r["name"]), r["role"], r["joined_at"])
        for r in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    return page, None if last is None else (last["rank"], last["sort_name"], str(last["id"]))


# ---- under the message-order lock -------------------------------------------------------------


async def room(conn: DbConnection, room_id: str) -> RoomRow | None:
    row = await conn.fetchrow(f"SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = $1::uuid", room_id)
    return None if row is None else _room(row)


async def room_by_direct_key(conn: DbConnection, key: str) -> RoomRow | None:
    row = await conn.fetchrow(f"SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.direct_key = $1", key)
    return None if row is None else _room(row)


async def role_of(conn: DbConnection, room_id: str, user_id: str) -> str | None:
    """`user_id`'s role in the room, None when not a member (the global room: member)."""
    if room_id == GLOBAL_ROOM_ID:
        exists = await conn.fetchval("SELECT true FROM users WHERE id = $1::uuid", user_id)
        return MEMBER if exists else None
    role: str | None = await conn.fetchval(
        "SELECT role FROM room_members WHERE room_id = $1::uuid AND user_id = $2::uuid",
        room_id,
        user_id,
    )
    return role


async def member_count(conn: DbConnection, room_id: str) -> int:
    if room_id == GLOBAL_ROOM_ID:
        count: int = await conn.fetchval("SELECT count(*) FROM users")
        return count
    count = await conn.fetchval(
        "SELECT count(*) FROM room_members WHERE room_id = $1::uuid", room_id
    )
    return count


async def packed_member_ids(conn: DbConnection, room_id: str) -> str:
    """Every member's id, 36 characters each, in one string (not for the global room).

    One value instead of a row per member: a 20,000-member room is one 720 KB string,
    with no Python object per member on the way to Redis (handlers/presence.py).
    """
    packed: str = await conn.fetchval(
        "SELECT coalesce(string_agg(user_id::text, ''), '') FROM room_members"
        " WHERE room_id = $1::uuid",
        room_id,
    )
    return packed


async def room_counts(conn: DbConnection, user_ids: Sequence[str]) -> dict[str, int]:
    """How many rooms each user is a member of (the global room not counted)."""
    rows = await conn.fetch(
        "SELECT u.id, (SELECT count(*) FROM room_members m WHERE m.user_id = u.id) AS rooms"
        " FROM unnest($1::uuid[]) AS u(id)",
        list(user_ids),
    )
    return {str(row["id"]): row["rooms"] for row in rows}


async def people(conn: DbConnection, user_ids: Sequence[str]) -> dict[str, Person]:
    """The accounts among `user_ids` that exist, by id (names as plain text)."""
    rows = await conn.fetch(
        "SELECT id, name FROM users WHERE id = ANY ($1::uuid[])", list(user_ids)
    )
    return {str(row["id"]): Person(str(row["id"]), plain_name(row["name"])) for row in rows}


async def create_room(
    conn: DbConnection,
    kind: str,
    name: str,
    topic: str,
    created_by: str,
    key: str | None = None,
) -> RoomRow | None:
    """Insert a room; None when a direct room with this `key` exists already."""
    row = await conn.fetchrow(
        "INSERT INTO rooms AS r (kind, name, topic, created_by, direct_key)"
        " VALUES ($1, $2, $3, $4::uuid, $5) ON CONFLICT (direct_key) DO NOTHING"
        f" RETURNING {ROOM_COLUMNS}",
        kind,
        name,
        topic,
        created_by,
        key,
    )
    return None if row is None else _room(row)


async def add_member(conn: DbConnection, room_id: str, user_id: str, role: str) -> MemberRow | None:
    """Make `user_id` a member; None when they already are one."""
    row = await conn.fetchrow(
        "WITH added AS (INSERT INTO room_members (room_id, user_id, role)"
        " VALUES ($1::uuid, $2::uuid, $3) ON CONFLICT DO NOTHING"
        " RETURNING user_id, role, joined_at)"
        " SELECT a.user_id, u.name, a.role, a.joined_at"
        " FROM added a JOIN users u ON u.id = a.user_id",
        room_id,
        user_id,
        role,
    )
    if row is None:
        return None
    return MemberRow(str(row["user_id"]), plain_name(row["name"]), row["role"], row["joined_at"])


async def member(conn: DbConnection, room_id: str, user_id: str) -> MemberRow | None:
    if room_id == GLOBAL_ROOM_ID:
        row = await conn.fetchrow(
            "SELECT id AS user_id, name, 'member' AS role, created_at AS joined_at"
            " FROM users WHERE id = $1::uuid",
            user_id,
        )
    else:
        row = await conn.fetchrow(
            "SELECT m.user_id, u.name, m.role, m.joined_at FROM room_members m"
            " JOIN users u ON u.id = m.user_id WHERE m.room_id = $1::uuid AND m.user_id = $2::uuid",
            room_id,
            user_id,
        )
    if row is None:
        return None
    return MemberRow(str(row["user_id"]), plain_name(row["name"]), row["role"], row["joined_at"])


async def remove_member(conn: DbConnection, room_id: str, user_id: str) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM room_members WHERE room_id = $1::uuid AND user_id = $2::uuid RETURNING true",
        room_id,
        user_id,
    )
    return bool(deleted)


async def set_role(conn: DbConnection, room_id: str, user_id: str, role: str) -> None:
    await conn.execute(
        "UPDATE room_members SET role = $3 WHERE room_id = $1::uuid AND user_id = $2::uuid",
        room_id,
        user_id,
        role,
    )


async def update_room(
    conn: DbConnection, room_id: str, name: str, topic: str, archived: bool, receipts: bool
) -> RoomRow:
    row = await conn.fetchrow(
        "UPDATE rooms AS r SET name = $2, topic = $3,"
        " archived_at = CASE WHEN $4 THEN coalesce(r.archived_at, now()) END, receipts = $5"
        f" WHERE r.id = $1::uuid RETURNING {ROOM_COLUMNS}",
        room_id,
        name,
        topic,
        archived,
        receipts,
    )
    assert row is not None  # rooms are never deleted
    return _room(row)


# ---- people ---------------------------------------------------------------------------------


async def find_people(
    conn: DbConnection, *, email: str | None, name_prefix: str | None, limit: int
) -> list[Person]:
    """Accounts by exact email (case-insensitive), or whose name starts with `name_prefix`.

    The prefix is a range on users(lower(name) text_pattern_ops), so the index serves
    it whatever the prefix; the `left(..)` filter keeps the range exact.
    """
    if email is not None:
        rows = await conn.fetch("SELECT id, name FROM users WHERE lower(email) = lower($1)", email)
    else:
        rows = await conn.fetch(
            "SELECT id, name FROM users"
            " WHERE lower(name) ~>=~ lower($1) AND lower(name) ~<~ (lower($1) || chr(1114111))"
            "  AND left(lower(name), length(lower($1))) = lower($1)"
            ' ORDER BY lower(name) COLLATE "C", id LIMIT $2',
            name_prefix,
            limit,
        )
    return [Person(str(row["id"]), plain_name(row["name"])) for row in rows]
