"""Read markers, unread counts and mentions, read receipts: the REST rules (docs/ROOM_STATE.md).

The live side (readUpdated on another replica, batched receipts) and a user in a
thousand rooms are in test_read_state_live.py, which runs its own stack.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.helpers.limits import ALLOWED_ORIGIN
from tests.helpers.rest import (
    GLOBAL_ROOM,
    Api,
    User,
    assert_error,
    create_room,
    open_direct,
    post_to_room,
    room_call,
    sign_up_and_in,
    unique_name,
)

NewUser = Callable[..., Awaitable[User]]


async def say(api: Api, user: User, room: str, text: str) -> str:
    reply = await post_to_room(api, user, room, text)
    assert reply.status == 201, reply.text
    return str(reply.body["_id"])


async def mark(api: Api, user: User, room: str, last_read: str) -> None:
    reply = await room_call(api, user, "PUT", f"/rooms/{room}/read", {"lastRead": last_read})
    assert reply.status == 204, reply.text


async def listed(api: Api, user: User, room: str) -> dict[str, Any]:
    """`room` as `GET /rooms` lists it for `user`."""
    reply = await room_call(api, user, "GET", "/rooms")
    assert reply.status == 200, reply.text
    return next(r for r in reply.body["rooms"] if r["id"] == room)


def read_state(room: dict[str, Any]) -> tuple[str | None, int, int]:
    return room["lastRead"], room["unread"], room["mentions"]


async def receipts(api: Api, user: User, room: str) -> list[dict[str, str]]:
    reply = await room_call(api, user, "GET", f"/rooms/{room}/receipts")
    assert reply.status == 200, reply.text
    return list(reply.body["receipts"])


async def test_the_marker_only_moves_forward_and_unread_counts_others_after_it(
    api: Api, new_user: NewUser
) -> None:
    ann, bo = await new_user(), await new_user()
    room = (await create_room(api, ann, kind="private", members=(bo,)))["id"]
    first, second, third = [await say(api, bo, room, f"news {n}") for n in range(3)]
    await say(api, ann, room, "my own words are never unread")

    assert read_state(await listed(api, ann, room)) == (None, 3, 0)
    await mark(api, ann, room, second)
    assert read_state(await listed(api, ann, room)) == (second, 1, 0)
    await mark(api, ann, room, first)  # backwards: nothing changes, still 204
    assert read_state(await listed(api, ann, room)) == (second, 1, 0)
    await mark(api, ann, room, third)
    assert read_state(await listed(api, ann, room)) == (third, 0, 0)

    fourth = await say(api, bo, room, "one more")
    assert read_state(await listed(api, ann, room)) == (third, 1, 0)
    assert read_state(await listed(api, bo, room)) == (None, 1, 0)  # ann's message only
    await mark(api, bo, room, fourth)
    assert read_state(await listed(api, bo, room)) == (fourth, 0, 0)


async def test_every_listed_room_has_a_read_state(api: Api, new_user: NewUser) -> None:
    ann = await new_user()
    await create_room(api, ann)
    reply = await room_call(api, ann, "GET", "/rooms")
    assert reply.status == 200, reply.text
    rooms = reply.body["rooms"]
    assert rooms[0]["id"] == GLOBAL_ROOM
    for room in rooms:
        assert isinstance(room["unread"], int) and 0 <= room["unread"] <= 999
        assert isinstance(room["mentions"], int) and room["mentions"] <= room["unread"]
        assert room["lastRead"] is None or room["lastRead"].isdigit()


async def test_mentions_count_unread_messages_naming_the_reader_in_any_case(
    api: Api, new_user: NewUser
) -> None:
    tag = uuid.uuid4().hex[:6]
    ann = await sign_up_and_in(api, f"Ann & Co {tag}")
    bo = await new_user()
    room = (await create_room(api, bo, kind="private", members=(ann,)))["id"]
    await say(api, bo, room, f"hello @ann &amp; co {tag.upper()}, look")
    await say(api, bo, room, f"<b>@ANN & CO {tag}</b> again")
    await say(api, bo, room, f"Ann & Co {tag} without the at sign")
    last = await say(api, bo, room, f"@Ann {tag} is someone else")
    assert read_state(await listed(api, ann, room)) == (None, 4, 2)

    await mark(api, ann, room, last)
    assert read_state(await listed(api, ann, room)) == (last, 0, 0)
    await say(api, ann, room, f"talking about myself: @{ann.name}")
    assert read_state(await listed(api, ann, room)) == (last, 0, 0)


async def test_only_members_set_markers_with_the_room_rules(api: Api, new_user: NewUser) -> None:
    ann, bo, eve = await new_user(), await new_user(), await new_user()
    private = (await create_room(api, ann, kind="private", members=(bo,)))["id"]
    public = (await create_room(api, ann, kind="public"))["id"]
    secret = await say(api, ann, private, "members only")
    open_message = await say(api, ann, public, "anyone may join")

    for reply in (
        await room_call(api, eve, "PUT", f"/rooms/{private}/read", {"lastRead": secret}),
        await room_call(api, eve, "PUT", f"/rooms/{uuid.uuid4()}/read", {"lastRead": secret}),
        await room_call(api, eve, "PUT", "/rooms/not-a-room/read", {"lastRead": secret}),
        await room_call(api, eve, "GET", f"/rooms/{private}/receipts"),
    ):
        assert_error(reply, 404)
    for reply in (
        await room_call(api, eve, "PUT", f"/rooms/{public}/read", {"lastRead": open_message}),
        await room_call(api, eve, "GET", f"/rooms/{public}/receipts"),
    ):
        assert_error(reply, 403)
        assert reply.body["code"] == "not_member"

    # A message of another room, or none at all, is no marker here.
    for other in (open_message, "999999999999"):
        reply = await room_call(api, bo, "PUT", f"/rooms/{private}/read", {"lastRead": other})
        assert_error(reply, 422)
        assert reply.body["fields"] == {"lastRead": "not a message of this room"}
    for body in ({}, {"lastRead": 12}, {"lastRead": "-1"}, {"lastRead": "1" * 19}):
        reply = await room_call(api, bo, "PUT", f"/rooms/{private}/read", body)
        assert_error(reply, 400)
    assert read_state(await listed(api, bo, private)) == (None, 1, 0)

    # Once removed, a member's marker can no longer be set.
    await mark(api, bo, private, secret)
    assert (await room_call(api, ann, "DELETE", f"/rooms/{private}/members/{bo.id}")).status == 204
    gone = await room_call(api, bo, "PUT", f"/rooms/{private}/read", {"lastRead": secret})
    assert_error(gone, 404)


async def test_the_global_room_has_a_marker_but_no_receipts(api: Api, new_user: NewUser) -> None:
    ann, bo = await new_user(), await new_user()
    reply = await api.post_message(bo, "hello everyone")
    assert reply.status == 201, reply.text
    message = str(reply.body["_id"])
    await mark(api, ann, GLOBAL_ROOM, message)
    await mark(api, bo, GLOBAL_ROOM, message)
    last_read, _, _ = read_state(await listed(api, ann, GLOBAL_ROOM))
    assert last_read is not None and int(last_read) >= int(message)
    assert await receipts(api, ann, GLOBAL_ROOM) == []
    refused = await room_call(api, ann, "PATCH", f"/rooms/{GLOBAL_ROOM}", {"receipts": True})
    assert_error(refused, 409)


async def test_direct_rooms_always_show_receipts(api: Api, new_user: NewUser) -> None:
    ann, bo = await new_user(), await new_user()
    direct = await open_direct(api, ann, bo)
    room = direct.body["id"]
    assert direct.body["receipts"] is True
    message = await say(api, bo, room, "did you read this?")
    assert await receipts(api, bo, room) == []  # ann has not read anything yet
    await mark(api, ann, room, message)
    await mark(api, bo, room, message)
    assert await receipts(api, bo, room) == [{"user": ann.id, "lastRead": message}]
    assert await receipts(api, ann, room) == [{"user": bo.id, "lastRead": message}]
    refused = await room_call(api, ann, "PATCH", f"/rooms/{room}", {"receipts": False})
    assert_error(refused, 409)
    assert refused.body["code"] == "direct_room"


async def test_owners_and_admins_turn_receipts_on_in_group_rooms(
    api: Api, new_user: NewUser
) -> None:
    ann, bo, cy = await new_user(), await new_user(), await new_user()
    created = await create_room(api, ann, kind="private", members=(bo, cy))
    room = created["id"]
    assert created["receipts"] is False
    message = await say(api, ann, room, "minutes of the meeting")
    for reader in (bo, cy):
        await mark(api, reader, room, message)
    assert await receipts(api, ann, room) == []  # off: nobody's marker is shown

    refused = await room_call(api, bo, "PATCH", f"/rooms/{room}", {"receipts": True})
    assert_error(refused, 403)
    made_admin = await room_call(
        api, ann, "PATCH", f"/rooms/{room}/members/{bo.id}", {"role": "admin"}
    )
    assert made_admin.status == 200, made_admin.text
    turned_on = await room_call(api, bo, "PATCH", f"/rooms/{room}", {"receipts": True})
    assert turned_on.status == 200, turned_on.text
    assert turned_on.body["receipts"] is True
    assert (await room_call(api, cy, "GET", f"/rooms/{room}")).body["receipts"] is True

    expected = sorted(
        [{"user": bo.id, "lastRead": message}, {"user": cy.id, "lastRead": message}],
        key=lambda r: r["user"],
    )
    assert await receipts(api, ann, room) == expected
    assert await receipts(api, cy, room) == [{"user": bo.id, "lastRead": message}]

    off = await room_call(api, ann, "PATCH", f"/rooms/{room}", {"receipts": False})
    assert off.status == 200 and off.body["receipts"] is False
    assert await receipts(api, ann, room) == []


async def test_a_user_who_stops_sending_receipts_keeps_their_marker(
    api: Api, new_user: NewUser
) -> None:
    ann, bo = await new_user(), await new_user()
    me = await room_call(api, bo, "GET", "/users/me")
    assert me.body["sendReceipts"] is True
    room = (await open_direct(api, ann, bo)).body["id"]
    message = await say(api, ann, room, "are you there?")

    switched = await room_call(api, bo, "PATCH", "/users/me", {"sendReceipts": False})
    assert switched.status == 200, switched.text
    assert switched.body == {
        "name": bo.name,
        "email": bo.email,
        "user_id": bo.id,
        "sendReceipts": False,
    }
    assert (await room_call(api, bo, "GET", "/users/me")).body["sendReceipts"] is False
    await mark(api, bo, room, message)
    assert read_state(await listed(api, bo, room)) == (message, 0, 0)
    assert await receipts(api, ann, room) == []

    back = await room_call(api, bo, "PATCH", "/users/me", {"sendReceipts": True})
    assert back.status == 200 and back.body["sendReceipts"] is True
    assert await receipts(api, ann, room) == [{"user": bo.id, "lastRead": message}]


@pytest.mark.parametrize("body", [{}, {"sendReceipts": "no"}, {"sendReceipts": None}, []])
async def test_bad_account_changes_are_400s_that_change_nothing(
    api: Api, new_user: NewUser, body: Any
) -> None:
    ann = await new_user()
    reply = await room_call(api, ann, "PATCH", "/users/me", body)
    assert_error(reply, 400)
    assert (await room_call(api, ann, "GET", "/users/me")).body["sendReceipts"] is True


async def test_a_receipts_setting_that_is_not_a_boolean_is_a_400(
    api: Api, new_user: NewUser
) -> None:
    ann = await new_user()
    room = (await create_room(api, ann, name=unique_name("Receipts")))["id"]
    reply = await room_call(api, ann, "PATCH", f"/rooms/{room}", {"receipts": "yes"})
    assert_error(reply, 400)
    assert reply.body["fields"] == {"receipts": "must be true or false"}
    assert (await room_call(api, ann, "GET", f"/rooms/{room}")).body["receipts"] is False


async def test_a_page_on_an_allowed_origin_may_set_markers(api: Api, new_user: NewUser) -> None:
    ann = await new_user()
    room = (await create_room(api, ann))["id"]
    preflight = await api.request(
        "OPTIONS",
        f"/rooms/{room}/read",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status == 204, preflight.text
    assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
