"""Writes to different rooms do not wait for each other, and clients still get one order.

A post holds only its room's lock from taking its id to its commit (migration 0009), so
a post to room B commits while a write to room A is still in flight, with a larger id.
The outbox relay must then hold B's message back until A's write has ended, or a client
that received B's id would never be sent A's. Each test holds a write to room A open in
a transaction of its own (the real store function, on the stack's database) and drives
everything else through the API, the relay and the gateways as they run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest

from services.api_service.db.messages import InsertResult, NewMessage, insert_messages
from tests.helpers.limits import WAIT
from tests.helpers.rest import Api, User, create_room, post_to_room
from tests.helpers.sockets import ChatSocket, Open, socket_opener
from tests.helpers.stack import ChatStack, require_local

pytestmark = pytest.mark.timeout(120)

NewUser = Callable[..., Awaitable[User]]


@pytest.fixture
async def database(chat_stack: ChatStack) -> AsyncIterator[str]:
    require_local(chat_stack)
    yield chat_stack.service_env["DATABASE_URL"]


@pytest.fixture
async def open_socket(gateway_urls: tuple[str, str], api: Api) -> AsyncIterator[Open]:
    async with socket_opener(gateway_urls, api) as open_:
        yield open_


class WriteInFlight:
    """A post to one room, stored but not committed, on a connection of its own."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._transaction = conn.transaction()

    async def store(self, author: User, room: str, text: str) -> int:
        await self._transaction.start()
        message = NewMessage(str(uuid.uuid4()), author.id, author.name, text, room=room)
        [stored] = await insert_messages(self._conn, [message])
        assert isinstance(stored, InsertResult)
        return stored.message.id

    async def commit(self) -> None:
        await self._transaction.commit()

    async def roll_back(self) -> None:
        await self._transaction.rollback()


@pytest.fixture
async def in_flight(database: str) -> AsyncIterator[WriteInFlight]:
    conn = await asyncpg.connect(database)
    try:
        yield WriteInFlight(conn)
    finally:
        await conn.close()  # also ends a transaction a failed test left open


async def wait_until_blocked(
    database: str, statement: str, unless: Callable[[], bool] = lambda: False
) -> None:
    """Until some session running `statement` waits for a lock, or `unless()` is true."""
    conn = await asyncpg.connect(database)
    try:
        deadline = asyncio.get_running_loop().time() + WAIT
        while not unless() and not await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            " AND wait_event_type = 'Lock' AND query LIKE $1",
            f"%{statement}%",
        ):
            assert asyncio.get_running_loop().time() < deadline, f"nobody waits in {statement}"
            # No event says a session started waiting: poll the server, with a deadline.
            await asyncio.sleep(0.01)  # wait-ok: polling, with a deadline
    finally:
        await conn.close()


async def say(api: Api, user: User, room: str, text: str) -> int:
    reply = await post_to_room(api, user, room, text)
    assert reply.status == 201, (reply.status, reply.text)
    return int(reply.body["_id"])


async def two_rooms(api: Api, new_user: NewUser) -> tuple[User, str, str]:
    ann = await new_user()
    first = await create_room(api, ann, kind="private")
    second = await create_room(api, ann, kind="private")
    return ann, first["id"], second["id"]


async def test_a_post_to_one_room_does_not_wait_for_a_write_in_flight_in_another(
    api: Api, new_user: NewUser, database: str, in_flight: WriteInFlight
) -> None:
    ann, room_a, room_b = await two_rooms(api, new_user)
    held = await in_flight.store(ann, room_a, "still committing")

    other_room = await asyncio.wait_for(say(api, ann, room_b, "not waiting"), WAIT)
    assert other_room > held, "the later post took the larger id and committed first"

    same_room = asyncio.ensure_future(say(api, ann, room_a, "waits for the room"))
    await wait_until_blocked(database, "chat_store_messages")
    assert not same_room.done()
    await in_flight.commit()
    assert await asyncio.wait_for(same_room, WAIT) > other_room


@dataclass(frozen=True)
class HoleOnTheWay:
    """A client of rooms A and B; a write to A held open, then a post to B above it."""

    sock: ChatSocket
    author: User
    room_a: str
    held: int  # the id of the write still in flight
    later: int  # the id of the post that committed first


async def hole_on_the_way(
    api: Api,
    new_user: NewUser,
    database: str,
    in_flight: WriteInFlight,
    open_socket: Open,
    replica: int,
) -> HoleOnTheWay:
    """Return once the relay waits at the hole (or, wrongly, published the post to B)."""
    ann, room_a, room_b = await two_rooms(api, new_user)
    sock: ChatSocket = await open_socket(ann, replica)
    held = await in_flight.store(ann, room_a, "first id, still committing")
    later = await say(api, ann, room_b, "second id, committed first")
    await wait_until_blocked(
        database, "chat_wait_for_entry_writers", unless=lambda: later in sock.socket_ids
    )
    return HoleOnTheWay(sock, ann, room_a, held, later)


async def test_a_client_gets_both_rooms_in_id_order_when_the_smaller_id_commits_last(
    api: Api, new_user: NewUser, database: str, in_flight: WriteInFlight, open_socket: Open
) -> None:
    hole = await hole_on_the_way(api, new_user, database, in_flight, open_socket, 0)
    assert hole.later not in hole.sock.socket_ids, "published past a write still in flight"
    await in_flight.commit()
    await hole.sock.wait_ids([hole.held, hole.later])
    assert hole.sock.socket_ids[-2:] == [hole.held, hole.later]


async def test_a_write_that_rolls_back_holds_back_nothing(
    api: Api, new_user: NewUser, database: str, in_flight: WriteInFlight, open_socket: Open
) -> None:
    hole = await hole_on_the_way(api, new_user, database, in_flight, open_socket, 1)
    await in_flight.roll_back()
    await hole.sock.wait_ids([hole.later])
    after = await say(api, hole.author, hole.room_a, "and the room goes on")
    await hole.sock.wait_ids([after])
    assert hole.held not in hole.sock.socket_ids
    assert hole.sock.socket_ids[-2:] == [hole.later, after]
