"""Edits, deletions, replies and reactions over Socket.IO, across two gateway replicas.

Changes go through the API's routes (docs/ROOM_STATE.md); the relay publishes their
room events in order with the messages, and each socket is connected to a named
replica. "Nothing else arrived" is checked behind a fence: a later global-room message,
which every client receives after everything committed before it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import pytest

from tests.helpers.rest import (
    GLOBAL_ROOM,
    Api,
    User,
    create_room,
    post,
    room_call,
    room_events,
)
from tests.helpers.sockets import ChatSocket, Open, socket_opener
from tests.helpers.stack import ChatStack, require_local

pytestmark = pytest.mark.timeout(120)

NewUser = Callable[..., Awaitable[User]]


@pytest.fixture
def database_url(chat_stack: ChatStack) -> str:
    require_local(chat_stack)
    return chat_stack.database_url


@pytest.fixture
async def open_socket(gateway_urls: tuple[str, str], api: Api) -> AsyncIterator[Open]:
    async with socket_opener(gateway_urls, api) as open_:
        yield open_


async def ok(api: Api, user: User, method: str, path: str, body: Any = None) -> Any:
    reply = await room_call(api, user, method, path, body)
    assert reply.status in (200, 201, 204), (method, path, reply.status, reply.text)
    return reply.body


async def say(api: Api, user: User, room: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"id": str(uuid.uuid4()), "text": text, **extra}
    return dict(await ok(api, user, "POST", f"/rooms/{room}/messages", body))


def message_path(room: str, message: str) -> str:
    return f"/rooms/{room}/messages/{message}"


def reaction_path(room: str, message: str, emoji: str) -> str:
    return f"{message_path(room, message)}/reactions/{quote(emoji, safe='')}"


async def fence(api: Api, author: User, *sockets: ChatSocket) -> int:
    """A global-room message every socket receives after everything committed before it."""
    fence_id = await post(api, author, "fence")
    for sock in sockets:
        await sock.wait_ids([fence_id])
    return fence_id


async def change_ids(database_url: str, room: str) -> list[int]:
    """The ids of the room's events about messages, in order."""
    return [
        e["id"]
        for e in await room_events(database_url, room)
        if e["kind"] in ("edited", "deleted", "reaction")
    ]


def in_room(sock: ChatSocket, room: str, since: int = 0) -> list[tuple[str, dict[str, Any]]]:
    return [(name, data) for name, data in sock.events[since:] if data.get("room") == room]


async def test_changes_made_while_disconnected_arrive_on_reconnect_in_order_with_messages(
    api: Api, new_user: NewUser, open_socket: Open, database_url: str
) -> None:
    ann, bob = await new_user(), await new_user()
    room = (await create_room(api, bob, kind="private", members=(ann,)))["id"]
    a = await open_socket(ann, 0)
    watcher = await open_socket(bob, 1)
    first = await say(api, bob, room, "first")
    await fence(api, bob, a, watcher)

    await a.sio.disconnect()
    await ok(api, bob, "PATCH", message_path(room, first["_id"]), {"text": "<b>first</b>, edited"})
    second = await say(api, bob, room, "second", replyTo=first["_id"])
    await ok(api, bob, "PUT", reaction_path(room, first["_id"], "🎉"))
    await ok(api, bob, "DELETE", message_path(room, second["_id"]))
    third = await say(api, bob, room, "third")
    await watcher.wait_ids([int(third["_id"])])

    before = len(a.events)
    await a.connect()  # lastId: the fence
    recovered = await a.wait_recovered()
    assert (recovered.recovered, recovered.last_id, recovered.refetch) == (
        True,
        third["_id"],
        [],
    )
    edited, reacted, deleted = await change_ids(database_url, room)
    assert int(first["_id"]) < edited < int(second["_id"]) < reacted < deleted < int(third["_id"])
    history = {m["_id"]: m for m in (await ok(api, ann, "GET", f"/rooms/{room}/messages"))}
    assert in_room(a, room, before) == [
        (
            "messageEdited",
            {
                "_id": str(edited),
                "room": room,
                "message": {
                    "_id": first["_id"],
                    "text": "<b>first</b>, edited",
                    "edited": history[first["_id"]]["edited"],
                },
            },
        ),
        ("message", second),
        (
            "reactionsChanged",
            {
                "_id": str(reacted),
                "room": room,
                "message": first["_id"],
                "reactions": [{"emoji": "🎉", "count": 1, "users": [bob.id]}],
            },
        ),
        ("messageDeleted", {"_id": str(deleted), "room": room, "message": second["_id"]}),
        ("message", third),
    ]
    assert second["replyTo"]["excerpt"] == "first, edited"  # the text when replying
    assert a.duplicates() == 0


async def test_reactions_and_edits_are_live_on_the_other_replica_and_not_for_legacy_clients(
    api: Api, new_user: NewUser, open_socket: Open
) -> None:
    ann, bob = await new_user(), await new_user()
    room = (await create_room(api, ann, members=(bob,)))["id"]
    a = await open_socket(ann, 0)
    b = await open_socket(bob, 1)
    legacy = await open_socket(bob, 1, rooms=False)
    message = await say(api, bob, room, "react to this")
    global_message = await say(api, bob, GLOBAL_ROOM, "global, to be edited")
    start = await fence(api, ann, a, b, legacy)
    a_since, b_since = len(a.events), len(b.events)

    await ok(api, ann, "PUT", reaction_path(room, message["_id"], "👍"))
    aggregate = [{"emoji": "👍", "count": 1, "users": [ann.id]}]
    seen = await b.wait_event("reactionsChanged", lambda d: d["message"] == message["_id"])
    assert seen["reactions"] == aggregate
    assert seen["room"] == room
    assert int(seen["_id"]) > start
    await ok(api, bob, "PUT", reaction_path(room, message["_id"], "👍"))
    both = [{"emoji": "👍", "count": 2, "users": [ann.id, bob.id]}]
    await a.wait_event("reactionsChanged", lambda d: d["reactions"] == both)

    await ok(api, bob, "PATCH", message_path(GLOBAL_ROOM, global_message["_id"]), {"text": "new"})
    edit = await a.wait_event("messageEdited")
    assert edit["room"] == GLOBAL_ROOM
    assert edit["message"]["_id"] == global_message["_id"]
    assert edit["message"]["text"] == "new"
    reply = await say(api, ann, GLOBAL_ROOM, "a reply", replyTo=global_message["_id"])
    await fence(api, ann, a, b, legacy)

    for sock, since in ((a, a_since), (b, b_since)):
        names = [name for name, _ in sock.events[since:] if name != "message"]
        assert names == ["reactionsChanged", "reactionsChanged", "messageEdited"], sock.name
    [live_reply] = [d for n, d in b.events if n == "message" and d["_id"] == reply["_id"]]
    assert live_reply == reply  # with its replyTo, as the POST answered
    assert legacy.events == []  # no room events of any kind
    legacy_reply = await legacy.next_message(lambda m: m.get("_id") == reply["_id"])
    assert set(legacy_reply) == {"_id", "id", "owner", "userName", "text", "createdAt"}
