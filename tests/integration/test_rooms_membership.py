"""Rooms over REST: create, list, join, leave, add, remove, roles, ownership, settings.

Every change must leave its room event (the row the relay publishes to the gateways)
with the payload docs/ROOMS.md documents, so each test also reads `room_events`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.helpers.limits import ALLOWED_ORIGIN
from tests.helpers.rest import (
    GLOBAL_ROOM,
    Api,
    User,
    add_to_room,
    assert_error,
    create_room,
    post_to_room,
    room_call,
    room_events,
)
from tests.helpers.stack import ChatStack, require_local

NewUser = Callable[..., Awaitable[User]]


@pytest.fixture
def database_url(chat_stack: ChatStack) -> str:
    require_local(chat_stack)
    return chat_stack.database_url


def person(user: User) -> dict[str, str]:
    return {"id": user.id, "name": user.name}


def events_of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["kind"] == kind]


async def test_creating_a_room_makes_the_caller_owner_and_adds_the_initial_members(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    ann, bo, cy = await new_user(), await new_user(), await new_user()
    room = await create_room(
        api, ann, kind="private", name="  Design  ", topic="Weekly review", members=(bo, cy)
    )
    assert room["kind"] == "private"
    assert room["name"] == "Design"  # trimmed
    assert room["topic"] == "Weekly review"
    assert room["role"] == "owner"
    assert room["memberCount"] == 3
    assert room["archived"] is False
    assert room["peer"] is None
    assert room["lastMessage"] is None

    events = await room_events(database_url, room["id"])
    assert [e["kind"] for e in events] == ["joined", "joined", "joined"]
    assert [e["subject"] for e in events] == [ann.id, bo.id, cy.id]
    first = events[0]["payload"]
    assert first["user"] == person(ann)
    assert first["role"] == "owner"
    assert first["room"] == {
        "id": room["id"],
        "kind": "private",
        "name": "Design",
        "topic": "Weekly review",
        "archived": False,
        "receipts": False,
        "createdAt": room["createdAt"],
        "memberCount": 3,
        "role": "owner",
        "peer": None,
        "lastMessage": None,
    }
    assert events[1]["payload"]["role"] == "member"
    assert events[1]["payload"]["room"]["role"] == "member"
    assert events[1]["payload"]["user"] == person(bo)

    bo_sees = await room_call(api, bo, "GET", f"/rooms/{room['id']}")
    assert bo_sees.status == 200, bo_sees.text
    assert bo_sees.body["role"] == "member"


async def test_my_rooms_start_with_the_global_room_then_newest_activity_first(
    api: Api, new_user: NewUser
) -> None:
    ann = await new_user()
    quiet = await create_room(api, ann, name="Quiet")
    busy = await create_room(api, ann, name="Busy")
    newest = await create_room(api, ann, name="Newest")
    posted = await post_to_room(api, ann, busy["id"], "hello busy")
    assert posted.status == 201, posted.text

    reply = await room_call(api, ann, "GET", "/rooms")
    assert reply.status == 200, reply.text
    rooms = reply.body["rooms"]
    assert rooms[0]["id"] == GLOBAL_ROOM
    assert rooms[0]["role"] == "member"
    assert rooms[0]["name"] == "General"
    assert [r["id"] for r in rooms[1:]] == [busy["id"], newest["id"], quiet["id"]]
    assert rooms[1]["lastMessage"] == posted.body
    assert rooms[1]["lastMessage"]["room"] == busy["id"]
    assert rooms[2]["lastMessage"] is None


async def test_anyone_joins_a_public_room_once_and_leaves_it(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    ann, bo = await new_user(), await new_user()
    room = await create_room(api, ann)
    path = f"/rooms/{room['id']}"

    outsider = await room_call(api, bo, "GET", path)
    assert outsider.status == 200
    assert outsider.body["role"] is None
    assert "lastMessage" not in outsider.body  # a public room's messages are for members

    joined = await room_call(api, bo, "POST", f"{path}/join")
    assert joined.status == 200, joined.text
    assert joined.body["role"] == "member"
    assert joined.body["memberCount"] == 2
    again = await room_call(api, bo, "POST", f"{path}/join")
    assert again.status == 200
    assert again.body["memberCount"] == 2

    left = await room_call(api, bo, "POST", f"{path}/leave")
    assert left.status == 204, left.text
    assert (await room_call(api, ann, "GET", path)).body["memberCount"] == 1
    history = await room_call(api, bo, "GET", f"{path}/messages")
    assert_error(history, 403)
    assert history.body["code"] == "not_member"

    events = (await room_events(database_url, room["id"]))[1:]
    assert [(e["kind"], e["subject"]) for e in events] == [("joined", bo.id), ("left", bo.id)]
    assert events[0]["payload"]["room"]["memberCount"] == 2
    assert events[0]["payload"]["room"]["role"] == "member"
    assert events[1]["payload"] == {"room": room["id"], "user": person(bo), "reason": "left"}


async def test_a_private_room_cannot_be_joined_and_its_members_add_by_role(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    ann, bo, cy, di = await new_user(), await new_user(), await new_user(), await new_user()
    room = await create_room(api, ann, kind="private", members=(bo,))
    path = f"/rooms/{room['id']}"

    assert_error(await room_call(api, cy, "POST", f"{path}/join"), 404)
    refused = await add_to_room(api, bo, room["id"], cy)  # a member may not add to a private room
    assert_error(refused, 403)
    assert refused.body["code"] == "forbidden"

    added = await add_to_room(api, ann, room["id"], cy)
    assert added.status == 201, added.text
    assert added.body["member"]["id"] == cy.id
    assert added.body["member"]["role"] == "member"
    assert added.body["member"]["name"] == cy.name
    again = await add_to_room(api, ann, room["id"], cy)
    assert again.status == 200
    made_admin = await add_to_room(api, ann, room["id"], di, role="admin")
    assert made_admin.status == 201
    assert made_admin.body["member"]["role"] == "admin"

    events = await room_events(database_url, room["id"])
    assert [(e["kind"], e["subject"]) for e in events[2:]] == [
        ("joined", cy.id),
        ("joined", di.id),
    ]
    assert events[2]["payload"]["room"]["memberCount"] == 3
    assert events[3]["payload"]["role"] == "admin"
    assert events[3]["payload"]["room"]["role"] == "admin"


async def test_any_member_adds_to_a_public_room_but_only_the_owner_makes_admins(
    api: Api, new_user: NewUser
) -> None:
    ann, bo, cy, di = await new_user(), await new_user(), await new_user(), await new_user()
    room = await create_room(api, ann, members=(bo,))
    assert (await add_to_room(api, bo, room["id"], cy)).status == 201
    assert_error(await add_to_room(api, bo, room["id"], di, role="admin"), 403)
    outsider = await add_to_room(api, di, room["id"], di)
    assert_error(outsider, 403)
    assert outsider.body["code"] == "not_member"


async def test_adding_nobody_is_a_field_error(api: Api, new_user: NewUser) -> None:
    ann = await new_user()
    room = await create_room(api, ann)
    reply = await room_call(
        api,
        ann,
        "POST",
        f"/rooms/{room['id']}/members",
        json={"userId": "6f1c1f7e-4b7e-4f38-9a0e-0d5c9f0f1a2b"},
    )
    assert_error(reply, 422)
    assert reply.body["fields"] == {"userId": "no such user"}
    missing = await room_call(
        api, ann, "POST", "/rooms", json={"kind": "public", "name": "X", "members": [room["id"]]}
    )
    assert_error(missing, 422)
    assert "members" in missing.body["fields"]


async def test_removing_follows_the_roles(api: Api, new_user: NewUser, database_url: str) -> None:
    ann, admin, bo, cy = await new_user(), await new_user(), await new_user(), await new_user()
    room = await create_room(api, ann, kind="private", members=(bo, cy))
    rid = room["id"]
    assert (await add_to_room(api, ann, rid, admin, role="admin")).status == 201

    def member(user: User) -> str:
        return f"/rooms/{rid}/members/{user.id}"

    assert_error(await room_call(api, bo, "DELETE", member(cy)), 403)  # a member removes nobody
    assert_error(await room_call(api, admin, "DELETE", member(ann)), 403)  # nor anyone the owner
    assert_error(await room_call(api, ann, "DELETE", member(ann)), 409)  # owner must transfer
    removed = await room_call(api, admin, "DELETE", member(bo))
    assert removed.status == 204, removed.text
    assert_error(await room_call(api, admin, "DELETE", member(bo)), 404)  # no longer a member
    assert_error(await room_call(api, bo, "GET", f"/rooms/{rid}/messages"), 404)  # private: gone

    other_admin = await new_user()
    assert (await add_to_room(api, ann, rid, other_admin, role="admin")).status == 201
    assert_error(await room_call(api, admin, "DELETE", member(other_admin)), 403)
    assert (await room_call(api, ann, "DELETE", member(other_admin))).status == 204
    assert (await room_call(api, cy, "DELETE", member(cy))).status == 204  # oneself: leaving

    left = events_of(await room_events(database_url, rid), "left")
    assert [e["payload"] for e in left] == [
        {"room": rid, "user": person(bo), "reason": "removed"},
        {"room": rid, "user": person(other_admin), "reason": "removed"},
        {"room": rid, "user": person(cy), "reason": "left"},
    ]


async def test_only_the_owner_changes_roles_and_transfers_ownership(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    ann, bo, cy = await new_user(), await new_user(), await new_user()
    room = await create_room(api, ann, members=(bo, cy))
    rid = room["id"]

    made = await room_call(
        api, ann, "PATCH", f"/rooms/{rid}/members/{bo.id}", json={"role": "admin"}
    )
    assert made.status == 200, made.text
    assert made.body["member"]["role"] == "admin"
    refused = await room_call(
        api, bo, "PATCH", f"/rooms/{rid}/members/{cy.id}", json={"role": "admin"}
    )
    assert_error(refused, 403)
    owner_role = await room_call(
        api, ann, "PATCH", f"/rooms/{rid}/members/{ann.id}", json={"role": "member"}
    )
    assert_error(owner_role, 409)
    assert owner_role.body["code"] == "owner_role"

    assert_error(
        await room_call(api, bo, "POST", f"/rooms/{rid}/owner", json={"userId": cy.id}), 403
    )
    outsider = await new_user()
    not_member = await room_call(
        api, ann, "POST", f"/rooms/{rid}/owner", json={"userId": outsider.id}
    )
    assert_error(not_member, 422)
    moved = await room_call(api, ann, "POST", f"/rooms/{rid}/owner", json={"userId": cy.id})
    assert moved.status == 200, moved.text
    assert moved.body["role"] == "admin"
    assert (await room_call(api, cy, "GET", f"/rooms/{rid}")).body["role"] == "owner"
    assert (await room_call(api, ann, "POST", f"/rooms/{rid}/leave")).status == 204

    roles = events_of(await room_events(database_url, rid), "role")
    assert [e["payload"] for e in roles] == [
        {"room": rid, "user": person(bo), "role": "admin"},
        {"room": rid, "user": person(cy), "role": "owner"},
        {"room": rid, "user": person(ann), "role": "admin"},
    ]
    assert [e["subject"] for e in roles] == [bo.id, cy.id, ann.id]


async def test_the_owner_leaves_only_after_transferring(api: Api, new_user: NewUser) -> None:
    ann = await new_user()
    room = await create_room(api, ann)
    refused = await room_call(api, ann, "POST", f"/rooms/{room['id']}/leave")
    assert_error(refused, 409)
    assert refused.body["code"] == "owner_must_transfer"


async def test_renaming_and_archiving_follow_the_roles(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    ann, admin, bo = await new_user(), await new_user(), await new_user()
    room = await create_room(api, ann, name="Old", members=(bo,))
    rid = room["id"]
    assert (await add_to_room(api, ann, rid, admin, role="admin")).status == 201

    assert_error(await room_call(api, bo, "PATCH", f"/rooms/{rid}", json={"name": "Mine"}), 403)
    renamed = await room_call(
        api, admin, "PATCH", f"/rooms/{rid}", json={"name": "New", "topic": "About"}
    )
    assert renamed.status == 200, renamed.text
    assert (renamed.body["name"], renamed.body["topic"]) == ("New", "About")
    assert_error(
        await room_call(api, admin, "PATCH", f"/rooms/{rid}", json={"archived": True}), 403
    )
    archived = await room_call(api, ann, "PATCH", f"/rooms/{rid}", json={"archived": True})
    assert archived.status == 200
    assert archived.body["archived"] is True

    refused = await post_to_room(api, bo, rid, "anyone?")
    assert_error(refused, 409)
    assert refused.body["code"] == "archived"
    assert (await room_call(api, bo, "GET", f"/rooms/{rid}/messages")).status == 200
    late = await new_user()
    closed = await room_call(api, late, "POST", f"/rooms/{rid}/join")
    assert_error(closed, 409)
    assert closed.body["code"] == "archived"

    reopened = await room_call(api, ann, "PATCH", f"/rooms/{rid}", json={"archived": False})
    assert reopened.body["archived"] is False
    assert (await post_to_room(api, bo, rid, "back")).status == 201
    same = await room_call(api, ann, "PATCH", f"/rooms/{rid}", json={"name": "New"})
    assert same.status == 200

    updated = events_of(await room_events(database_url, rid), "updated")
    receipts = {"receipts": False}
    assert [e["payload"] for e in updated] == [
        {"room": {"id": rid, "name": "New", "topic": "About", "archived": False, **receipts}},
        {"room": {"id": rid, "name": "New", "topic": "About", "archived": True, **receipts}},
        {"room": {"id": rid, "name": "New", "topic": "About", "archived": False, **receipts}},
    ]
    assert all(e["subject"] is None for e in updated)


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"name": "<b>x</b>"}, "name", "must not contain < or >"),
        ({"name": "   "}, "name", "must not be empty"),
        ({"name": "x" * 81}, "name", "must be at most 80 characters"),
        (
            {"topic": "a\u202eb"},
            "topic",
            "must not contain control or invisible formatting characters",
        ),
        ({"topic": "t" * 251}, "topic", "must be at most 250 characters"),
    ],
)
async def test_room_names_and_topics_are_plain_text_of_bounded_length(
    api: Api, new_user: NewUser, body: dict[str, str], field: str, problem: str
) -> None:
    ann = await new_user()
    created = await room_call(
        api, ann, "POST", "/rooms", json={"kind": "public", "name": "Fine", **body}
    )
    assert_error(created, 422)
    assert created.body["fields"] == {field: problem}
    room = await create_room(api, ann, name="Kept")
    patched = await room_call(api, ann, "PATCH", f"/rooms/{room['id']}", json=body)
    assert_error(patched, 422)
    assert patched.body["fields"] == {field: problem}
    assert (await room_call(api, ann, "GET", f"/rooms/{room['id']}")).body["name"] == "Kept"


async def test_bad_bodies_are_400s_that_change_nothing(api: Api, new_user: NewUser) -> None:
    ann = await new_user()
    for body in ({"kind": "direct", "name": "x"}, {"name": "x"}, {"kind": "public", "members": 3}):
        reply = await room_call(api, ann, "POST", "/rooms", json=body)
        assert_error(reply, 400)
        assert reply.body["code"] == "validation_failed"
    room = await create_room(api, ann)
    for nothing in ({}, {"name": None, "topic": None, "archived": None}):
        empty = await room_call(api, ann, "PATCH", f"/rooms/{room['id']}", json=nothing)
        assert_error(empty, 400)
    bad_role = await room_call(
        api, ann, "POST", f"/rooms/{room['id']}/members", json={"userId": ann.id, "role": "owner"}
    )
    assert_error(bad_role, 400)
    assert bad_role.body["fields"] == {"role": "must be admin or member"}
    mine = await room_call(api, ann, "GET", "/rooms")
    assert [r["id"] for r in mine.body["rooms"]] == [GLOBAL_ROOM, room["id"]]


async def test_a_browser_may_send_patch_from_an_allowed_origin(api: Api, new_user: NewUser) -> None:
    ann = await new_user()
    room = await create_room(api, ann, name="Before")
    preflight = await api.request(
        "OPTIONS",
        f"/rooms/{room['id']}",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status == 204, preflight.text
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    patched = await api.request(
        "PATCH",
        f"/rooms/{room['id']}",
        token=ann.token,
        json={"name": "After"},
        headers={"Origin": ALLOWED_ORIGIN},
    )
    assert patched.status == 200
    assert patched.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert patched.body["name"] == "After"


async def test_when_the_owner_deletes_their_account_the_room_gets_a_new_owner(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    """A room has exactly one owner: the account going must not leave it without one.

    The admin who has been in the room longest takes over (a member when there is no
    admin), and the members are told as for a transfer and a departure.
    """
    ann, bo, cy = await new_user(), await new_user(), await new_user()
    with_admin = await create_room(api, ann, kind="private", members=(bo,))
    assert (await add_to_room(api, ann, with_admin["id"], cy, role="admin")).status == 201
    members_only = await create_room(api, ann, members=(bo,))
    assert (await add_to_room(api, ann, members_only["id"], cy)).status == 201
    deleted = await api.request(
        "DELETE", "/users/me", token=ann.token, json={"password": ann.password}
    )
    assert deleted.status == 204, deleted.text

    for room, heir in ((with_admin, cy), (members_only, bo)):
        rid = room["id"]
        page = await room_call(api, bo, "GET", f"/rooms/{rid}/members")
        roles = {m["id"]: m["role"] for m in page.body["members"]}
        assert roles == {bo.id: "member", cy.id: "member"} | {heir.id: "owner"}, rid
        assert (await room_call(api, heir, "GET", f"/rooms/{rid}")).body["role"] == "owner"
        events = await room_events(database_url, rid)
        assert events[-2:] == [
            {
                "id": events[-2]["id"],
                "kind": "role",
                "subject": heir.id,
                "payload": {"room": rid, "user": person(heir), "role": "owner"},
            },
            {
                "id": events[-1]["id"],
                "kind": "left",
                "subject": ann.id,
                "payload": {
                    "room": rid,
                    "user": {"id": ann.id, "name": "Deleted user"},
                    "reason": "left",
                },
            },
        ]
