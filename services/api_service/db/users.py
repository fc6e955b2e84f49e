"""Queries on accounts."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.api_service.db.pool import DbConnection
from services.api_service.db.room_events import insert_room_event, lock_message_order
from services.shared.names import plain_name
from services.shared.rooms import LEFT, ROLE


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    password_hash: str
    send_receipts: bool = True  # others see this user's read markers (docs/ROOM_STATE.md)

    def public(self) -> dict[str, str]:
        """The account as the sign-up response shows it (no password hash)."""
        return {"_id": self.id, "name": self.name, "email": self.email}


# What a deleted account's messages show as their author (see migration 0004).
DELETED_AUTHOR_NAME = "Deleted user"


class EmailTaken(Exception):
    """Another account already uses this email (compared case-insensitively)."""


USER_COLUMNS = "id, name, email, password_hash, send_receipts"


def _user(row: asyncpg.Record) -> User:
    return User(
        str(row["id"]), row["name"], row["email"], row["password_hash"], row["send_receipts"]
    )


async def create_user(conn: DbConnection, name: str, email: str, password_hash: str) -> User:
    """Insert an account; raise EmailTaken when the email is in use."""
    try:
        row = await conn.fetchrow(
            "INSERT INTO users (name, email, password_hash) VALUES ($1, $2, $3)"
            f" RETURNING {USER_COLUMNS}",
            name,
            email,
            password_hash,
        )
    except asyncpg.UniqueViolationError:
        raise EmailTaken(email) from None
    assert row is not None
    return _user(row)


async def find_by_email(conn: DbConnection, email: str) -> User | None:
    row = await conn.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1)", email
    )
    return _user(row) if row else None


async def find_by_id(conn: DbConnection, user_id: str) -> User | None:
    row = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1::uuid", user_id)
    return _user(row) if row else None


async def set_send_receipts(conn: DbConnection, user_id: str, send: bool) -> User | None:
    """Switch whether others see the user's read markers; None when the account is gone."""
    row = await conn.fetchrow(
        f"UPDATE users SET send_receipts = $2 WHERE id = $1::uuid RETURNING {USER_COLUMNS}",
        user_id,
        send,
    )
    return _user(row) if row else None


async def delete_user(conn: DbConnection, user_id: str) -> bool:
    """Delete the account and detach its messages from its name; False if it was gone.

    The message-order lock comes first, exclusive, as for every membership change:
    batches inserting this author's messages hold it shared (and the row FOR KEY SHARE,
    migration 0004), so the rename that follows sees them too, and later batches find no author
    and refuse its posts. The account leaves each of its rooms as a member leaving
    would (a room event each), and a room it owned passes to its longest-standing
    admin, or member when it has no admin, so that no room is left without an owner.
    """
    async with conn.transaction():
        await lock_message_order(conn)
        rooms = await conn.fetch(
            "SELECT room_id::text, role FROM room_members WHERE user_id = $1::uuid"
            " ORDER BY room_id",
            user_id,
        )
        deleted = await conn.fetchval("DELETE FROM users WHERE id = $1::uuid RETURNING id", user_id)
        if deleted is None:
            return False
        await conn.execute(
            "UPDATE messages SET user_name = $2 WHERE owner_id = $1::uuid AND user_name <> $2",
            user_id,
            DELETED_AUTHOR_NAME,
        )
        for room in rooms:
            if room["role"] == "owner":
                await _pass_ownership_on(conn, room["room_id"])
            gone = {"id": user_id, "name": DELETED_AUTHOR_NAME}
            payload = {"room": room["room_id"], "user": gone, "reason": "left"}
            await insert_room_event(conn, room["room_id"], LEFT, user_id, payload)
    return True


async def _pass_ownership_on(conn: DbConnection, room_id: str) -> None:
    """Make the room's longest-standing admin (else member) its owner, if anyone is left."""
    heir = await conn.fetchrow(
        "UPDATE room_members m SET role = 'owner'"
        " FROM (SELECT user_id FROM room_members WHERE room_id = $1::uuid"
        "       ORDER BY role = 'admin' DESC, joined_at, user_id LIMIT 1) h"
        " WHERE m.room_id = $1::uuid AND m.user_id = h.user_id"
        " RETURNING m.user_id::text AS id, (SELECT name FROM users WHERE id = m.user_id) AS name",
        room_id,
    )
    if heir is not None:
        user = {"id": heir["id"], "name": plain_name(heir["name"])}
        payload = {"room": room_id, "user": user, "role": "owner"}
        await insert_room_event(conn, room_id, ROLE, heir["id"], payload)
