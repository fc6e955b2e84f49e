"""Whether a private room exists is private: every route answers a non-member 404.

A malformed id, a random id, a private room and a direct room the caller is not in must
be indistinguishable, by status and by body, on every room route; a public room the
caller is not in answers 403 `not_member` to what only members may do.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.helpers.rest import (
    Api,
    Reply,
    User,
    add_to_room,
    assert_error,
    create_room,
    open_direct,
    post_to_room,
    room_call,
)

NewUser = Callable[..., Awaitable[User]]


def calls(room: str, someone: str) -> list[tuple[str, str, Any]]:
    """Every room route, with a body that would be valid for a member."""
    return [
        ("GET", f"/rooms/{room}", None),
        ("PATCH", f"/rooms/{room}", {"name": "Mine now"}),
        ("GET", f"/rooms/{room}/members", None),
        ("POST", f"/rooms/{room}/join", None),
        ("POST", f"/rooms/{room}/leave", None),
        ("POST", f"/rooms/{room}/members", {"userId": someone}),
        ("PATCH", f"/rooms/{room}/members/{someone}", {"role": "admin"}),
        ("DELETE", f"/rooms/{room}/members/{someone}", None),
        ("POST", f"/rooms/{room}/owner", {"userId": someone}),
        ("GET", f"/rooms/{room}/messages", None),
        ("POST", f"/rooms/{room}/messages", {"id": str(uuid.uuid4()), "text": "let me in"}),
    ]


def shape(reply: Reply) -> tuple[int, Any]:
    return reply.status, reply.body


@pytest.fixture
async def hidden_rooms(api: Api, new_user: NewUser) -> tuple[User, User, dict[str, str]]:
    """An outsider, a member, and rooms the outsider must not learn about."""
    ann, bo, outsider = await new_user(), await new_user(), await new_user()
    private = await create_room(api, ann, kind="private", members=(bo,))
    assert (await post_to_room(api, ann, private["id"], "secret")).status == 201
    direct = await open_direct(api, ann, bo)
    assert direct.status == 201, direct.text
    return (
        outsider,
        bo,
        {
            "private": private["id"],
            "direct": direct.body["id"],
            "random": str(uuid.uuid4()),
            "malformed": "not-a-uuid",
            "almost": private["id"][:-1],
        },
    )


async def test_every_room_route_answers_a_non_member_the_same_404(
    api: Api, hidden_rooms: tuple[User, User, dict[str, str]]
) -> None:
    outsider, member, rooms = hidden_rooms
    answers: dict[str, list[tuple[int, Any]]] = {}
    for label, room in rooms.items():
        answers[label] = []
        for method, path, body in calls(room, member.id):
            reply = await room_call(api, outsider, method, path, json=body)
            assert_error(reply, 404)
            answers[label].append(shape(reply))
    assert answers["private"] == answers["random"] == answers["malformed"] == answers["direct"]
    assert answers["almost"] == answers["random"]
    assert {body["code"] for _, body in answers["private"]} == {"not_found"}

    # Nothing changed: the member still sees the room as it was.
    mine = await room_call(api, member, "GET", f"/rooms/{rooms['private']}")
    assert mine.status == 200
    assert mine.body["name"] != "Mine now"
    assert mine.body["memberCount"] == 2


async def test_hidden_rooms_are_in_no_list_of_the_outsider(
    api: Api, hidden_rooms: tuple[User, User, dict[str, str]]
) -> None:
    outsider, _, rooms = hidden_rooms
    mine = await room_call(api, outsider, "GET", "/rooms")
    public = await room_call(api, outsider, "GET", "/rooms/public", limit=100)
    listed = {r["id"] for r in mine.body["rooms"]} | {r["id"] for r in public.body["rooms"]}
    assert rooms["private"] not in listed
    assert rooms["direct"] not in listed
    assert all(r["kind"] == "public" for r in public.body["rooms"])


async def test_a_public_room_answers_non_members_403_for_member_only_actions(
    api: Api, new_user: NewUser
) -> None:
    ann, bo, outsider = await new_user(), await new_user(), await new_user()
    room = await create_room(api, ann, members=(bo,))
    rid = room["id"]
    member_only = [
        ("GET", f"/rooms/{rid}/messages", None),
        ("POST", f"/rooms/{rid}/messages", {"id": str(uuid.uuid4()), "text": "hi"}),
        ("GET", f"/rooms/{rid}/members", None),
        ("PATCH", f"/rooms/{rid}", {"topic": "mine"}),
        ("PATCH", f"/rooms/{rid}/members/{bo.id}", {"role": "admin"}),
        ("DELETE", f"/rooms/{rid}/members/{bo.id}", None),
        ("POST", f"/rooms/{rid}/owner", {"userId": outsider.id}),
    ]
    for method, path, body in member_only:
        reply = await room_call(api, outsider, method, path, json=body)
        assert_error(reply, 403)
        assert reply.body["code"] == "not_member", (method, path)
    refused = await add_to_room(api, outsider, rid, outsider)
    assert refused.body["code"] == "not_member"
    details = await room_call(api, outsider, "GET", f"/rooms/{rid}")
    assert details.status == 200
    assert details.body["role"] is None


async def test_a_removed_member_loses_access_at_once(api: Api, new_user: NewUser) -> None:
    ann, bo = await new_user(), await new_user()
    room = await create_room(api, ann, kind="private", members=(bo,))
    rid = room["id"]
    assert (await room_call(api, bo, "GET", f"/rooms/{rid}/messages")).status == 200
    assert (await room_call(api, ann, "DELETE", f"/rooms/{rid}/members/{bo.id}")).status == 204
    assert_error(await room_call(api, bo, "GET", f"/rooms/{rid}/messages"), 404)
    assert_error(await post_to_room(api, bo, rid, "still here?"), 404)
    assert_error(await room_call(api, bo, "GET", f"/rooms/{rid}"), 404)
    mine = await room_call(api, bo, "GET", "/rooms")
    assert rid not in {r["id"] for r in mine.body["rooms"]}
