"""Queries on accounts."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    password_hash: str

    def public(self) -> dict[str, str]:
        """The account as the sign-up response shows it (no password hash)."""
        return {"_id": self.id, "name": self.name, "email": self.email}


class EmailTaken(Exception):
    """Another account already uses this email (compared case-insensitively)."""


def _user(row: asyncpg.Record) -> User:
    return User(str(row["id"]), row["name"], row["email"], row["password_hash"])


async def create_user(conn: asyncpg.Connection, name: str, email: str, password_hash: str) -> User:
    """Insert an account; raise EmailTaken when the email is in use."""
    try:
        row = await conn.fetchrow(
            "INSERT INTO users (name, email, password_hash) VALUES ($1, $2, $3)"
            " RETURNING id, name, email, password_hash",
            name, email, password_hash,
        )
    except asyncpg.UniqueViolationError:
        raise EmailTaken(email) from None
    assert row is not None
    return _user(row)


async def find_by_email(conn: asyncpg.Connection, email: str) -> User | None:
    row = await conn.fetchrow(
        "SELECT id, name, email, password_hash FROM users WHERE lower(email) = lower($1)", email
    )
    return _user(row) if row else None


async def find_by_id(conn: asyncpg.Connection, user_id: str) -> User | None:
    row = await conn.fetchrow(
        "SELECT id, name, email, password_hash FROM users WHERE id = $1::uuid", user_id
    )
    return _user(row) if row else None
