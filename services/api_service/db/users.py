"""Queries on accounts."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.api_service.db.pool import DbConnection


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

    The row goes first: its lock waits for batches inserting this author's messages
    (they hold it FOR KEY SHARE, migration 0004), so the rename that follows sees them
    too, and later batches find no author and refuse its posts.
    """
    async with conn.transaction():
        deleted = await conn.fetchval("DELETE FROM users WHERE id = $1::uuid RETURNING id", user_id)
        if deleted is None:
            return False
        await conn.execute(
            "UPDATE messages SET user_name = $2 WHERE owner_id = $1::uuid AND user_name <> $2",
            user_id,
            DELETED_AUTHOR_NAME,
        )
    return True
