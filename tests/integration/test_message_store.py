"""The one-statement batch insert (`chat_store_messages`) against a real PostgreSQL.

The writer stores every batch of posted messages with this one call, so retries,
repeats inside one batch, id order and the relay's wake-up all hinge on it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest

from services.api_service.db.messages import (
    NEW_MESSAGE_CHANNEL,
    InsertResult,
    NewMessage,
    OwnerMissing,
    history_page,
    insert_messages,
    messages_after,
)
from services.api_service.db.migrate import available_migrations, migrate
from tests.helpers.rest import Api, User
from tests.helpers.stack import ChatStack, create_database, drop_database

ADMIN_URL = os.environ.get(
    "TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A migrated throwaway database."""
    name = f"chat_store_{uuid.uuid4().hex}"
    url = await create_database(ADMIN_URL, name)
    try:
        connection = await asyncpg.connect(url)
        try:
            await migrate(connection)
        finally:
            await connection.close()
        yield url
    finally:
        await drop_database(ADMIN_URL, name)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def new_user(conn: asyncpg.Connection) -> str:
    return str(
        await conn.fetchval(
            "INSERT INTO users (name, email, password_hash) VALUES ('ann', $1, 'x') RETURNING id",
            f"{uuid.uuid4().hex}@example.com",
        )
    )


def message(owner: str, client_id: str, text: str) -> NewMessage:
    return NewMessage(client_id=client_id, owner=owner, user_name="ann", text=text)


async def test_batch_stores_new_keys_once_and_returns_stored_rows_for_retries(
    conn: asyncpg.Connection,
) -> None:
    owner = await new_user(conn)
    old, a, b = (str(uuid.uuid4()) for _ in range(3))
    [first] = await insert_messages(conn, [message(owner, old, "stored before")])

    results = await insert_messages(
        conn,
        [
            message(owner, a, "a"),
            message(owner, old, "retry of an old one"),
            message(owner, b, "b"),
            message(owner, a, "a again in the same batch"),
        ],
    )

    assert [r.created for r in results] == [True, False, True, False]
    assert results[1].message == first.message  # the stored text, not the retry's
    assert results[3].message == results[0].message
    assert results[0].message.id < results[2].message.id  # ids follow the batch order
    assert first.message.id < results[0].message.id
    assert await conn.fetchval("SELECT count(*) FROM messages") == 3


async def test_commit_notifies_the_relay_only_when_something_new_was_stored(
    conn: asyncpg.Connection, database_url: str
) -> None:
    owner = await new_user(conn)
    payloads: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(NEW_MESSAGE_CHANNEL, lambda *args: payloads.put_nowait(args[3]))
        key = str(uuid.uuid4())
        [stored] = await insert_messages(conn, [message(owner, key, "one")])
        assert await asyncio.wait_for(payloads.get(), 5) == str(stored.message.id)

        await insert_messages(conn, [message(owner, key, "retry")])  # nothing new: no NOTIFY
        [later] = await insert_messages(conn, [message(owner, str(uuid.uuid4()), "two")])
        assert await asyncio.wait_for(payloads.get(), 5) == str(later.message.id)
    finally:
        await listener.close()


async def test_history_pages_carry_exactly_what_the_relay_broadcasts(
    conn: asyncpg.Connection,
) -> None:
    """REST history is built by SQL, broadcasts by StoredMessage.to_wire: the same bytes."""
    owner = await new_user(conn)
    await insert_messages(
        conn, [message(owner, str(uuid.uuid4()), t) for t in ("a", "b <i>c</i>", "é")]
    )
    # A whole-second time: no fraction in the ISO string either way.
    await conn.execute("UPDATE messages SET created_at = '2026-01-02 03:04:05+00' WHERE text = 'a'")

    broadcast = [m.to_wire() for m in await messages_after(conn, 0, 10)]
    history = await history_page(conn, owner, limit=10)

    assert orjson.dumps(history) == orjson.dumps(broadcast)
    assert orjson.loads(orjson.dumps(history))[0]["createdAt"] == "2026-01-02T03:04:05+00:00"


async def test_the_relay_saves_its_cursor_soon_after_publishing(
    chat_stack: ChatStack, api: Api, new_user
) -> None:
    """The cursor is saved lazily (no fsync wait, at most every 0.25 s) but it is saved."""
    if chat_stack.external:
        pytest.skip("reads the stack's database")
    user: User = await new_user()
    posted = await api.post_message(user, "cursor check")
    assert posted.status == 201, posted.text
    newest = int(posted.body["_id"])
    conn = await asyncpg.connect(chat_stack.service_env["DATABASE_URL"])
    try:
        deadline = asyncio.get_running_loop().time() + 10
        saved = 0
        while saved < newest:
            assert asyncio.get_running_loop().time() < deadline, (
                f"cursor stuck at {saved} < {newest}"
            )
            saved = await conn.fetchval(
                "SELECT last_published_id FROM relay_state WHERE name = 'socketio'"
            )
            # No event says the cursor was saved: poll the database, with a deadline.
            await asyncio.sleep(0.05)  # wait-ok: polling, with a deadline
    finally:
        await conn.close()


async def test_a_deleted_authors_message_fails_alone_and_the_batch_commits(
    conn: asyncpg.Connection,
) -> None:
    """One message of an account that no longer exists must not fail the others' posts."""
    ann, gone = await new_user(conn), await new_user(conn)
    await conn.execute("DELETE FROM users WHERE id = $1", gone)
    never = str(uuid.uuid4())  # a valid UUID that never was an account
    batch = [
        message(ann, str(uuid.uuid4()), "first"),
        message(gone, str(uuid.uuid4()), "from a deleted account"),
        message(never, str(uuid.uuid4()), "from nobody"),
        message(ann, str(uuid.uuid4()), "second"),
    ]
    results = await insert_messages(conn, batch)

    assert [type(r) for r in results] == [InsertResult, OwnerMissing, OwnerMissing, InsertResult]
    stored = [m.text for m in await messages_after(conn, 0, 10)]
    assert stored == ["first", "second"]


async def test_history_is_refused_to_a_reader_without_an_account(conn: asyncpg.Connection) -> None:
    ann, gone = await new_user(conn), await new_user(conn)
    await insert_messages(conn, [message(ann, str(uuid.uuid4()), "hello")])
    await conn.execute("DELETE FROM users WHERE id = $1", gone)
    assert [m["text"] for m in await history_page(conn, ann, limit=10)] == ["hello"]
    assert await history_page(conn, ann, limit=10, after=10**9) == []  # empty page, reader exists
    assert await history_page(conn, gone, limit=10) is None
    assert await history_page(conn, gone, limit=10, after=0) is None


async def test_names_and_images_stored_before_the_rules_are_cleaned() -> None:
    """Migration 0005 cleans what earlier versions stored raw."""
    name = f"chat_store_{uuid.uuid4().hex}"
    url = await create_database(ADMIN_URL, name)
    try:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for migration in available_migrations():
                if migration.version < 5:
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
            owner = str(
                await conn.fetchval(
                    "INSERT INTO users (name, email, password_hash) VALUES ($1, 'm@x.io', 'x') "
                    "RETURNING id",
                    "<img src=x onerror=alert(1)>",
                )
            )
            await conn.execute(  # as the schema of that time stored it
                "INSERT INTO messages (client_id, owner_id, user_name, text)"
                " VALUES ($1::uuid, $2::uuid, $3, $4)",
                str(uuid.uuid4()),
                owner,
                "<img src=x onerror=alert(1)>",
                '<b>hi</b><img src="https://tracker.example/p.gif">',
            )
            assert 5 in await migrate(conn)
            assert await conn.fetchval("SELECT name FROM users") == "img src=x onerror=alert(1)"
            [page] = await history_page(conn, owner, limit=5) or [None]
            assert page is not None
            assert page["userName"] == "img src=x onerror=alert(1)" and page["text"] == "<b>hi</b>"
        finally:
            await conn.close()
    finally:
        await drop_database(ADMIN_URL, name)
