"""The gateway against the relay's contract alone: entries published as the relay does.

test_rooms_socket.py drives rooms end to end through the API. Here the entries are
published with the relay's own Lua script and packets (membership hashes and room tails
kept by it) on a stack of this module's own whose API publishes nothing else, so the
test chooses every entry and its payload exactly: room events and messages in one
batch, each event's payload as docs/DELIVERY.md documents it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from services.shared.redis_contract import RedisKeys
from services.shared.rooms import GLOBAL_ROOM_ID
from tests.helpers.relay import (
    RelayLike,
    joined_entry,
    message_entry,
    role_entry,
    updated_entry,
)
from tests.helpers.rest import Api, User, new_user, rest_session
from tests.helpers.sockets import ChatSocket, Open, socket_opener
from tests.helpers.stack import ChatStack, local_chat_stack

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
async def rooms_stack() -> AsyncIterator[ChatStack]:
    async with local_chat_stack("rooms-relay", {"RATE_LIMIT_AUTH_PER_MINUTE": "0"}) as stack:
        yield stack


@pytest.fixture(scope="module")
async def rooms_api(rooms_stack: ChatStack) -> AsyncIterator[Api]:
    async with rest_session() as http:
        yield Api(http, rooms_stack.api_url)


@pytest.fixture(scope="module")
def relay(rooms_stack: ChatStack, redis_client: aioredis.Redis) -> RelayLike:
    return RelayLike(redis_client, rooms_stack.channel)


@pytest.fixture
async def open_socket(rooms_stack: ChatStack, rooms_api: Api) -> AsyncIterator[Open]:
    async with socket_opener(rooms_stack.gateway_urls, rooms_api) as open_:
        yield open_


def new_room() -> str:
    return str(uuid.uuid4())


async def fence(relay: RelayLike, author: User, *sockets: ChatSocket) -> int:
    """A global-room message every socket receives after everything published before it."""
    fence_id = await relay.message(GLOBAL_ROOM_ID, author, "fence")
    for sock in sockets:
        await sock.wait_ids([fence_id])
    return fence_id


async def test_each_room_event_and_message_of_one_batch_reaches_the_right_sockets_in_order(
    rooms_api: Api, relay: RelayLike, open_socket: Open
) -> None:
    ann, bob, eve = [await new_user(rooms_api) for _ in range(3)]
    room = new_room()
    await relay.publish(joined_entry(room, ann, "owner", "Design"))
    a = await open_socket(ann, 0)
    b = await open_socket(bob, 1)
    e = await open_socket(eve, 1)

    added, first = await relay.publish(
        joined_entry(room, bob, "member", "Design"), message_entry(room, ann, "hello")
    )
    await a.wait_ids([first])
    await b.wait_ids([first])
    joined = await b.wait_event("roomJoined")
    assert joined == {
        "_id": str(added),
        "room": {"id": room, "kind": "private", "name": "Design", "topic": "", "archived": False},
    }
    changed = await a.wait_event("memberChanged")
    assert changed == {
        "_id": str(added),
        "room": room,
        "user": {"id": bob.id, "name": bob.name},
        "role": "member",
    }
    message = a.events[-1][1]
    assert message["room"] == room and message["text"] == "hello" and message["_id"] == str(first)

    promoted, renamed = await relay.publish(
        role_entry(room, bob, "admin"), updated_entry(room, "Design review", "weekly")
    )
    for sock in (a, b):
        await sock.wait_event("roomUpdated")
        assert sock.event_log()[-2:] == [
            ("memberChanged", str(promoted)),
            ("roomUpdated", str(renamed)),
        ]
    assert (await b.wait_event("roomUpdated"))["room"] == {
        "id": room,
        "name": "Design review",
        "topic": "weekly",
        "archived": False,
    }
    await fence(relay, ann, a, b, e)
    assert [name for name, _ in e.events] == ["message"], "a non-member got nothing of the room"
    assert e.messages.qsize() == 1


async def test_a_tab_admitted_with_known_memberships_gets_its_rooms_though_another_was_not(
    rooms_api: Api, relay: RelayLike, redis_client: aioredis.Redis, open_socket: Open
) -> None:
    """A second tab does not inherit the rooms of a first one admitted without them.

    The first tab connects while Redis has lost the user's membership (the relay is
    still rebuilding the hashes: its mark is behind): it is admitted in the global room
    only and held back. The second tab connects once the hashes are whole again, on the
    same replica; it must receive the messages of the user's rooms from then on.
    """
    ann, bob = [await new_user(rooms_api) for _ in range(2)]
    room = new_room()
    (added,) = await relay.publish(joined_entry(room, ann, "member", "Design"))
    watcher = await open_socket(bob, 0)
    await fence(relay, bob, watcher)  # the replica has delivered past the join

    keys = RedisKeys(relay.prefix)
    await redis_client.hdel(keys.user_rooms(ann.id), room)
    await redis_client.set(keys.memberships_applied, 0)
    await open_socket(ann, 0, name="first tab")  # admitted without its rooms, held back
    await redis_client.hset(keys.user_rooms(ann.id), room, added)
    await redis_client.set(keys.memberships_applied, relay.last_id or 0)
    second = await open_socket(ann, 0, name="second tab")

    in_room = await relay.message(room, bob, "for the members of Design")
    fence_id = await fence(relay, bob, watcher, second)
    assert in_room in second.delivered(), "the second tab missed a message of its room"
    assert fence_id > in_room
