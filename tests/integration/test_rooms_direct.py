"""Direct rooms (one per pair, also under concurrent creation) and finding people."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from tests.helpers.rest import (
    Api,
    User,
    add_to_room,
    assert_error,
    open_direct,
    post_to_room,
    room_call,
    room_events,
    sign_up_and_in,
    unique_name,
)
from tests.helpers.stack import ChatStack, require_local

NewUser = Callable[..., Awaitable[User]]


@pytest.fixture
def database_url(chat_stack: ChatStack) -> str:
    require_local(chat_stack)
    return chat_stack.database_url


async def test_a_direct_room_is_created_once_and_shows_each_person_the_other(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    ann, bo = await new_user(), await new_user()
    created = await open_direct(api, ann, bo)
    assert created.status == 201, created.text
    room = created.body
    assert room["kind"] == "direct"
    assert room["name"] == bo.name
    assert room["peer"] == {"id": bo.id, "name": bo.name}
    assert room["memberCount"] == 2
    assert room["role"] == "member"

    again = await open_direct(api, bo, ann)
    assert again.status == 200
    assert again.body["id"] == room["id"]
    assert again.body["name"] == ann.name
    assert again.body["peer"] == {"id": ann.id, "name": ann.name}

    events = await room_events(database_url, room["id"])
    assert [(e["kind"], e["subject"]) for e in events] == [("joined", ann.id), ("joined", bo.id)]
    for event, user, peer in ((events[0], ann, bo), (events[1], bo, ann)):
        assert event["payload"] == {
            "room": {
                "id": room["id"],
                "kind": "direct",
                "name": peer.name,
                "topic": "",
                "archived": False,
                "receipts": True,
                "createdAt": room["createdAt"],
                "memberCount": 2,
                "role": "member",
                "peer": {"id": peer.id, "name": peer.name},
                "lastMessage": None,
            },
            "user": {"id": user.id, "name": user.name},
            "role": "member",
        }


async def test_concurrent_openings_from_both_sides_make_one_room(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    ann, bo = await new_user(), await new_user()
    replies = await asyncio.gather(
        *(open_direct(api, *((ann, bo) if i % 2 else (bo, ann))) for i in range(10))
    )
    assert Counter(r.status for r in replies) == {201: 1, 200: 9}, [r.text for r in replies]
    ids = {r.body["id"] for r in replies}
    assert len(ids) == 1
    events = await room_events(database_url, ids.pop())
    assert len(events) == 2  # two people joined, once each


async def test_a_direct_room_has_its_two_people_fixed(api: Api, new_user: NewUser) -> None:
    ann, bo, cy = await new_user(), await new_user(), await new_user()
    room = (await open_direct(api, ann, bo)).body
    rid = room["id"]
    for reply in (
        await add_to_room(api, ann, rid, cy),
        await room_call(api, ann, "POST", f"/rooms/{rid}/leave"),
        await room_call(api, ann, "PATCH", f"/rooms/{rid}", json={"name": "Ours"}),
        await room_call(api, ann, "DELETE", f"/rooms/{rid}/members/{bo.id}"),
        await room_call(api, ann, "POST", f"/rooms/{rid}/owner", json={"userId": bo.id}),
        await room_call(api, ann, "POST", f"/rooms/{rid}/join"),
    ):
        if reply.status == 200:  # joining a room one is in changes nothing
            assert reply.body["memberCount"] == 2
            continue
        assert_error(reply, 409)
        assert reply.body["code"] == "direct_room"
    assert_error(await room_call(api, cy, "POST", f"/rooms/{rid}/join"), 404)
    posted = await post_to_room(api, bo, rid, "just us")
    assert posted.status == 201
    history = await room_call(api, ann, "GET", f"/rooms/{rid}/messages")
    assert [m["text"] for m in history.body] == ["just us"]


async def test_a_direct_room_needs_someone_else(api: Api, new_user: NewUser) -> None:
    ann = await new_user()
    alone = await open_direct(api, ann, ann)
    assert_error(alone, 422)
    assert alone.body["fields"] == {"userId": "must be someone else"}
    nobody = await room_call(
        api, ann, "POST", "/rooms/direct", json={"userId": "6f1c1f7e-4b7e-4f38-9a0e-0d5c9f0f1a2b"}
    )
    assert_error(nobody, 422)
    assert nobody.body["fields"] == {"userId": "no such user"}


async def test_people_are_found_by_exact_email_or_name_prefix_and_never_show_emails(
    api: Api, new_user: NewUser
) -> None:
    ann = await new_user()
    stem = unique_name("Zq")[:20].replace(" ", "")
    bo = await sign_up_and_in(api, f"{stem} Bo")
    cy = await sign_up_and_in(api, f"{stem.lower()} Cy")

    by_email = await room_call(api, ann, "GET", "/users", email=bo.email.upper())
    assert by_email.status == 200, by_email.text
    assert by_email.body == {"users": [{"id": bo.id, "name": bo.name}]}
    partial = await room_call(api, ann, "GET", "/users", email=bo.email[:-1])
    assert partial.body == {"users": []}

    by_name = await room_call(api, ann, "GET", "/users", name=stem.upper())
    assert {u["id"] for u in by_name.body["users"]} == {bo.id, cy.id}
    assert all(set(u) == {"id", "name"} for u in by_name.body["users"])
    one = await room_call(api, ann, "GET", "/users", name=stem, limit=1)
    assert len(one.body["users"]) == 1
    inside = await room_call(api, ann, "GET", "/users", name=stem[1:])
    assert bo.id not in {u["id"] for u in inside.body["users"]}  # a prefix, not "contains"


@pytest.mark.parametrize(
    "params",
    [{}, {"name": "a"}, {"email": "x@example.com", "name": "Ann"}, {"name": "An", "limit": "0"}],
)
async def test_a_search_needs_one_email_or_a_prefix_of_two_characters(
    api: Api, new_user: NewUser, params: dict[str, str]
) -> None:
    ann = await new_user()
    reply = await room_call(api, ann, "GET", "/users", **params)
    assert_error(reply, 400)
    assert reply.body["code"] == "validation_failed"
