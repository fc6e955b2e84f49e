"""Read state across two gateway replicas, and the room list of a user in a thousand rooms.

A marker set over REST reaches the reader's other devices on any replica as
`readUpdated` and clears their unread count; receipts reach the room's members batched,
one `receipts` event per room per RECEIPT_BATCH_SECONDS. "Nothing else arrived" is
checked behind a later marker: notices travel one channel, in the order they were
published, so an event that should not have come would come before the later one.
The module runs its own stack with the rate limits off (it creates a thousand rooms)
and a batch window of BATCH_SECONDS.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.helpers.limits import RATE_LIMITS_OFF
from tests.helpers.rest import (
    Api,
    User,
    create_room,
    new_user,
    open_direct,
    post_to_room,
    rest_session,
    room_call,
)
from tests.helpers.sockets import ChatSocket, Open, socket_opener
from tests.helpers.stack import ChatStack, local_chat_stack

pytestmark = pytest.mark.timeout(300)

BATCH_SECONDS = 2.0


@pytest.fixture(scope="module")
async def reads_stack() -> AsyncIterator[ChatStack]:
    env = {
        **RATE_LIMITS_OFF,
        "MAX_ROOMS_PER_USER": "2000",
        "RECEIPT_BATCH_SECONDS": str(BATCH_SECONDS),
    }
    async with local_chat_stack("read-state", env) as stack:
        yield stack


@pytest.fixture(scope="module")
async def reads_api(reads_stack: ChatStack) -> AsyncIterator[Api]:
    async with rest_session() as http:
        yield Api(http, reads_stack.api_url)


@pytest.fixture
async def open_socket(reads_stack: ChatStack, reads_api: Api) -> AsyncIterator[Open]:
    async with socket_opener(reads_stack.gateway_urls, reads_api) as open_:
        yield open_


async def say(api: Api, user: User, room: str, text: str) -> str:
    reply = await post_to_room(api, user, room, text)
    assert reply.status == 201, (reply.status, reply.text)
    return str(reply.body["_id"])


async def mark(api: Api, user: User, room: str, last_read: str) -> None:
    reply = await room_call(api, user, "PUT", f"/rooms/{room}/read", {"lastRead": last_read})
    assert reply.status == 204, (reply.status, reply.text)


async def my_rooms(api: Api, user: User) -> dict[str, dict[str, Any]]:
    reply = await room_call(api, user, "GET", "/rooms")
    assert reply.status == 200, (reply.status, reply.text)
    return {room["id"]: room for room in reply.body["rooms"]}


def received(sock: ChatSocket, name: str) -> list[Any]:
    return [data for event, data in sock.events if event == name]


async def test_a_marker_set_on_one_device_clears_unread_and_reaches_the_other_replica(
    reads_api: Api, open_socket: Open
) -> None:
    ann, bo = await new_user(reads_api), await new_user(reads_api)
    room = (await create_room(reads_api, bo, kind="private", members=(ann,)))["id"]
    phone, laptop = await open_socket(ann, 0), await open_socket(ann, 1)
    bos = await open_socket(bo, 1)
    first = await say(reads_api, bo, room, "are you coming?")
    second = await say(reads_api, bo, room, "we start at ten")
    await laptop.wait_ids([int(first), int(second)])
    assert (await my_rooms(reads_api, ann))[room]["unread"] == 2

    await mark(reads_api, ann, room, second)  # read on the phone
    for device in (laptop, phone):
        update = await device.wait_event("readUpdated")
        assert update == {"room": room, "lastRead": second}
    listed = (await my_rooms(reads_api, ann))[room]
    assert (listed["lastRead"], listed["unread"]) == (second, 0)

    # bo's own marker comes after ann's on the same channel: had ann's reached bo's
    # socket, it would be there first.
    await mark(reads_api, bo, room, second)
    await bos.wait_event("readUpdated")
    assert received(bos, "readUpdated") == [{"room": room, "lastRead": second}]
    assert received(laptop, "readUpdated") == [{"room": room, "lastRead": second}]


async def test_receipts_in_a_direct_room_reach_the_other_person_batched(
    reads_api: Api, open_socket: Open
) -> None:
    ann, bo = await new_user(reads_api), await new_user(reads_api)
    room = (await open_direct(reads_api, ann, bo)).body["id"]
    bos = await open_socket(bo, 1)
    await open_socket(ann, 0)
    sent = [await say(reads_api, bo, room, f"line {n}") for n in range(4)]
    await bos.wait_ids([int(sent[-1])])

    def read_up_to() -> list[str]:
        """How far each `receipts` event bo received says ann has read, in order."""
        batches = received(bos, "receipts")
        assert all(batch["room"] == room for batch in batches), batches
        assert all([r["user"] for r in batch["readers"]] == [ann.id] for batch in batches)
        return [batch["readers"][0]["lastRead"] for batch in batches]

    for message in sent[:3]:  # three markers well inside one window
        await mark(reads_api, ann, room, message)
    await bos.wait_event("receipts", lambda d: d["readers"][0]["lastRead"] == sent[2])
    # The room's receipts leave once a window, at the room's own instant in it, which
    # may fall between two of the markers: one event or two, never one per marker.
    batched = read_up_to()
    assert batched in ([sent[2]], [sent[0], sent[2]], [sent[1], sent[2]]), batched

    await mark(reads_api, ann, room, sent[3])
    await bos.wait_event("receipts", lambda d: d["readers"][0]["lastRead"] == sent[3])
    assert read_up_to() == [*batched, sent[3]]


async def test_group_receipts_batch_readers_and_leave_out_those_who_opted_out(
    reads_api: Api, open_socket: Open
) -> None:
    ann, bo, cy, dan = [await new_user(reads_api) for _ in range(4)]
    room = (await create_room(reads_api, ann, kind="private", members=(bo, cy, dan)))["id"]
    on = await room_call(reads_api, ann, "PATCH", f"/rooms/{room}", {"receipts": True})
    assert on.status == 200, on.text
    hidden = await room_call(reads_api, cy, "PATCH", "/users/me", {"sendReceipts": False})
    assert hidden.status == 200, hidden.text
    anns = await open_socket(ann, 0)
    cys = await open_socket(cy, 1)
    message = await say(reads_api, ann, room, "agenda attached")
    await anns.wait_ids([int(message)])

    await mark(reads_api, cy, room, message)  # opted out: a marker, no receipt
    await cys.wait_event("readUpdated")
    await mark(reads_api, bo, room, message)
    await mark(reads_api, dan, room, message)

    def readers() -> list[dict[str, str]]:
        batches = received(anns, "receipts")
        assert all(batch["room"] == room for batch in batches)
        return sorted((r for batch in batches for r in batch["readers"]), key=lambda r: r["user"])

    await anns.wait_for(lambda: any(r["user"] == dan.id for r in readers()), what="dan's receipt")
    expected = [{"user": bo.id, "lastRead": message}, {"user": dan.id, "lastRead": message}]
    assert readers() == sorted(expected, key=lambda r: r["user"])


async def test_a_user_in_a_thousand_rooms_gets_unread_counts_and_mentions_for_all(
    reads_api: Api,
) -> None:
    ann, bo = await new_user(reads_api), await new_user(reads_api)
    rooms: list[str] = []
    for _ in range(0, 1000, 25):
        created = await asyncio.gather(
            *(create_room(reads_api, bo, kind="private", members=(ann,)) for _ in range(25))
        )
        rooms.extend(room["id"] for room in created)

    def text(index: int) -> str:
        return f"hey @{ann.name.upper()}" if index % 10 == 0 else f"note {index}"

    latest: dict[str, str] = {}
    for start in range(0, 1000, 25):
        batch = rooms[start : start + 25]
        ids = await asyncio.gather(
            *(say(reads_api, bo, room, text(start + i)) for i, room in enumerate(batch))
        )
        latest.update(zip(batch, ids, strict=True))
    for start in range(0, 500, 25):  # the first half read
        await asyncio.gather(
            *(mark(reads_api, ann, r, latest[r]) for r in rooms[start : start + 25])
        )
    busy = rooms[-1]
    for _ in range(0, 1010, 25):
        await asyncio.gather(*(say(reads_api, bo, busy, "chatter") for _ in range(25)))

    timings = []
    for _ in range(5):
        started = time.perf_counter()
        listed = await my_rooms(reads_api, ann)
        timings.append(time.perf_counter() - started)
    print(
        f"\nGET /rooms of a user in {len(listed) - 1} rooms (+ the global room): "
        f"median {statistics.median(timings) * 1000:.0f} ms, "
        f"max {max(timings) * 1000:.0f} ms over {len(timings)} calls"
    )

    assert len(listed) == 1001
    for index, room in enumerate(rooms[:-1]):
        state = listed[room]
        mentions = 1 if index % 10 == 0 else 0
        if index < 500:
            assert (state["lastRead"], state["unread"], state["mentions"]) == (latest[room], 0, 0)
        else:
            assert (state["lastRead"], state["unread"], state["mentions"]) == (None, 1, mentions)
    assert listed[busy]["unread"] == 999  # 1,011 unread, counted up to 999
