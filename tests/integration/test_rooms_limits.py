"""The limits of docs/ROOMS.md, each met on one more API process started with small values.

The process shares the stack's database and Redis; each test uses fresh accounts, so the
per-user limits of one test never reach another.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.helpers.processes import extra_process
from tests.helpers.rest import (
    Api,
    User,
    add_to_room,
    assert_error,
    create_room,
    open_direct,
    post_to_room,
    room_call,
    sign_up_and_in,
)
from tests.helpers.stack import ChatStack

pytestmark = pytest.mark.timeout(120)

LIMITS = {
    "MAX_ROOMS_PER_USER": "3",
    "MAX_MEMBERS_PER_ROOM": "3",
    "ROOM_NAME_MAX_CHARS": "10",
    "ROOM_TOPIC_MAX_CHARS": "5",
    "RATE_LIMIT_ROOMS_CREATED_PER_MINUTE": "5",
    "RATE_LIMIT_INVITES_PER_MINUTE": "3",
    "RATE_LIMIT_ROOM_POSTS_PER_MINUTE": "3",
    "RATE_LIMIT_USER_SEARCH_PER_MINUTE": "2",
    "RATE_LIMIT_ROOM_READS_PER_MINUTE": "6",
}


@pytest.fixture(scope="module")
async def small(chat_stack: ChatStack, http: aiohttp.ClientSession) -> AsyncIterator[Api]:
    """A REST client of an API process with the small limits of LIMITS."""
    async with extra_process(chat_stack, "services.api_service", LIMITS, "api-room-limits") as url:
        yield Api(http, url)


async def users(api: Api, n: int) -> list[User]:
    return [await sign_up_and_in(api) for _ in range(n)]


def refused(reply: object, status: int, code: str) -> None:
    assert_error(reply, status)  # type: ignore[arg-type]
    assert reply.body["code"] == code, reply.body  # type: ignore[attr-defined]


async def test_rooms_per_user(small: Api) -> None:
    ann, bo, cy = await users(small, 3)
    for _ in range(3):
        await create_room(small, ann, name="Mine")
    refused(
        await room_call(small, ann, "POST", "/rooms", json={"kind": "public", "name": "4"}),
        409,
        "too_many_rooms",
    )
    refused(await open_direct(small, ann, bo), 409, "too_many_rooms")
    theirs = await create_room(small, bo, name="Theirs")
    refused(
        await room_call(small, ann, "POST", f"/rooms/{theirs['id']}/join"), 409, "too_many_rooms"
    )
    refused(await add_to_room(small, bo, theirs["id"], ann), 409, "too_many_rooms")
    refused(
        await room_call(
            small, cy, "POST", "/rooms", json={"kind": "public", "name": "x", "members": [ann.id]}
        ),
        409,
        "too_many_rooms",
    )
    mine = await room_call(small, ann, "GET", "/rooms")
    assert len(mine.body["rooms"]) == 1 + 3  # the global room does not count


async def test_members_per_room(small: Api) -> None:
    ann, bo, cy, di = await users(small, 4)
    room = await create_room(small, ann, name="Three", members=(bo,))
    assert (await room_call(small, cy, "POST", f"/rooms/{room['id']}/join")).status == 200
    refused(await room_call(small, di, "POST", f"/rooms/{room['id']}/join"), 409, "room_full")
    refused(await add_to_room(small, ann, room["id"], di), 409, "room_full")
    too_many = {"kind": "private", "name": "Four", "members": [bo.id, cy.id, di.id]}
    refused(await room_call(small, ann, "POST", "/rooms", json=too_many), 409, "room_full")


async def test_concurrent_joins_never_overfill_a_room(small: Api) -> None:
    owner = (await users(small, 1))[0]
    room = await create_room(small, owner, name="Race")
    joiners = await users(small, 6)
    replies = await asyncio.gather(
        *(room_call(small, j, "POST", f"/rooms/{room['id']}/join") for j in joiners)
    )
    assert Counter(r.status for r in replies) == {200: 2, 409: 4}
    details = await room_call(small, owner, "GET", f"/rooms/{room['id']}")
    assert details.body["memberCount"] == 3


async def test_name_and_topic_lengths(small: Api) -> None:
    ann = (await users(small, 1))[0]
    long_name = await room_call(
        small, ann, "POST", "/rooms", json={"kind": "public", "name": "x" * 11}
    )
    assert_error(long_name, 422)
    assert long_name.body["fields"] == {"name": "must be at most 10 characters"}
    long_topic = await room_call(
        small, ann, "POST", "/rooms", json={"kind": "public", "name": "ok", "topic": "123456"}
    )
    assert_error(long_topic, 422)
    assert long_topic.body["fields"] == {"topic": "must be at most 5 characters"}
    assert (
        await room_call(
            small,
            ann,
            "POST",
            "/rooms",
            json={"kind": "public", "name": "x" * 10, "topic": "12345"},
        )
    ).status == 201


async def test_rooms_created_per_minute(small: Api) -> None:
    ann, *others = await users(small, 5)
    statuses = []
    for other in others[:3]:
        statuses.append((await open_direct(small, ann, other)).status)
    statuses.append(
        (await room_call(small, ann, "POST", "/rooms", json={"kind": "public", "name": "r"})).status
    )
    assert statuses == [201, 201, 201, 409]  # the fourth meets the rooms-per-user limit
    again = await open_direct(small, ann, others[0])
    assert again.status == 200  # an existing direct room costs nothing
    refused(await open_direct(small, ann, others[3]), 409, "too_many_rooms")  # the fifth
    limited = await room_call(small, ann, "POST", "/rooms", json={"kind": "public", "name": "r"})
    refused(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1


async def test_invitations_per_minute(small: Api) -> None:
    ann, bo, cy, di = await users(small, 4)
    with_two = await create_room(small, ann, name="Two", members=(bo, cy))  # two invitations
    assert (
        await room_call(small, ann, "DELETE", f"/rooms/{with_two['id']}/members/{cy.id}")
    ).status == 204
    assert (await add_to_room(small, ann, with_two["id"], di)).status == 201  # the third
    refused(await add_to_room(small, ann, with_two["id"], cy), 429, "rate_limited")


async def test_posts_per_user_and_room(small: Api) -> None:
    ann = (await users(small, 1))[0]
    first = await create_room(small, ann, name="First")
    second = await create_room(small, ann, name="Second")
    for i in range(3):
        assert (await post_to_room(small, ann, first["id"], f"m{i}")).status == 201
    refused(await post_to_room(small, ann, first["id"], "one more"), 429, "rate_limited")
    assert (await post_to_room(small, ann, second["id"], "another room")).status == 201
    history = await room_call(small, ann, "GET", f"/rooms/{first['id']}/messages")
    assert [m["text"] for m in history.body] == ["m0", "m1", "m2"]


async def test_user_searches_per_minute(small: Api) -> None:
    ann = (await users(small, 1))[0]
    for _ in range(2):
        assert (await room_call(small, ann, "GET", "/users", name="zz")).status == 200
    refused(
        await room_call(small, ann, "GET", "/users", email=f"{uuid.uuid4().hex}@x.io"),
        429,
        "rate_limited",
    )


async def test_room_reads_per_minute(small: Api) -> None:
    """The list, the directory, members and presence read in proportion: one budget."""
    ann = (await users(small, 1))[0]
    room = (await create_room(small, ann, kind="private", name="r"))["id"]
    for path in ("/rooms", "/rooms/public", f"/rooms/{room}/members", f"/rooms/{room}/presence"):
        assert (await room_call(small, ann, "GET", path)).status == 200, path
    assert (await room_call(small, ann, "GET", "/rooms")).status == 200
    assert (await room_call(small, ann, "GET", f"/rooms/{room}/members")).status == 200
    refused(await room_call(small, ann, "GET", f"/rooms/{room}/presence"), 429, "rate_limited")
