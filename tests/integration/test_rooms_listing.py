"""The public directory (search by name, cursor pages) and a room's member pages."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.helpers.rest import (
    Api,
    User,
    add_to_room,
    assert_error,
    create_room,
    room_call,
    sign_up_and_in,
)

NewUser = Callable[..., Awaitable[User]]


async def all_pages(
    api: Api, user: User, path: str, key: str, **params: str | int
) -> tuple[list[dict[str, Any]], int]:
    """Every item of a cursor-paged list, and the number of pages it took."""
    items: list[dict[str, Any]] = []
    pages = 0
    cursor: str | None = None
    while True:
        extra = {} if cursor is None else {"cursor": cursor}
        reply = await room_call(api, user, "GET", path, **params, **extra)
        assert reply.status == 200, reply.text
        pages += 1
        items.extend(reply.body[key])
        cursor = reply.body["next"]
        if cursor is None:
            return items, pages


async def test_public_rooms_are_searched_by_name_and_paged_in_name_order(
    api: Api, new_user: NewUser
) -> None:
    ann, bo = await new_user(), await new_user()
    tag = uuid.uuid4().hex[:8]
    names = [f"{tag} Delta", f"{tag} alpha", f"{tag} Charlie", f"{tag} bravo", f"{tag} echo"]
    made = {name: await create_room(api, ann, name=name) for name in names}
    await create_room(api, ann, kind="private", name=f"{tag} secret")

    found, pages = await all_pages(api, bo, "/rooms/public", "rooms", q=tag.upper(), limit=2)
    assert pages == 3
    assert [r["name"] for r in found] == sorted(names, key=str.lower)
    assert {r["id"] for r in found} == {room["id"] for room in made.values()}
    assert all(r["role"] is None and "lastMessage" not in r for r in found)
    assert all(r["memberCount"] == 1 for r in found)

    mine, _ = await all_pages(api, ann, "/rooms/public", "rooms", q=f"{tag} ALPHA")
    assert [(r["name"], r["role"]) for r in mine] == [(f"{tag} alpha", "owner")]


async def test_a_search_takes_like_wildcards_literally(api: Api, new_user: NewUser) -> None:
    ann = await new_user()
    tag = uuid.uuid4().hex[:8]
    await create_room(api, ann, name=f"{tag} 100% sure")
    await create_room(api, ann, name=f"{tag} 1000 sure")
    await create_room(api, ann, name=f"{tag} a_b")
    await create_room(api, ann, name=f"{tag} axb")
    percent, _ = await all_pages(api, ann, "/rooms/public", "rooms", q=f"{tag} 100%")
    assert [r["name"] for r in percent] == [f"{tag} 100% sure"]
    under, _ = await all_pages(api, ann, "/rooms/public", "rooms", q=f"{tag} a_")
    assert [r["name"] for r in under] == [f"{tag} a_b"]


async def test_the_global_room_is_in_the_directory(api: Api, new_user: NewUser) -> None:
    ann = await new_user()
    found, _ = await all_pages(api, ann, "/rooms/public", "rooms", q="general")
    general = [r for r in found if r["id"] == "00000000-0000-0000-0000-000000000000"]
    assert len(general) == 1
    assert general[0]["role"] == "member"


async def test_members_are_paged_owner_first_then_by_name(api: Api, new_user: NewUser) -> None:
    tag = uuid.uuid4().hex[:6]
    owner = await sign_up_and_in(api, f"zz {tag} Owner")
    people = [await sign_up_and_in(api, f"{c} {tag}") for c in ("Eve", "bob", "Al", "dan", "Cy")]
    room = await create_room(api, owner, kind="private", members=tuple(people[:3]))
    assert (await add_to_room(api, owner, room["id"], people[3], role="admin")).status == 201
    assert (await add_to_room(api, owner, room["id"], people[4])).status == 201

    members, pages = await all_pages(
        api, people[0], f"/rooms/{room['id']}/members", "members", limit=2
    )
    assert pages == 3
    assert [m["name"] for m in members] == [
        owner.name,
        f"Al {tag}",
        f"bob {tag}",
        f"Cy {tag}",
        f"dan {tag}",
        f"Eve {tag}",
    ]
    assert [m["role"] for m in members] == [
        "owner",
        "member",
        "member",
        "member",
        "admin",
        "member",
    ]
    assert all(set(m) == {"id", "name", "role", "joinedAt"} for m in members)


@pytest.mark.parametrize(
    "cursor", ["x", "bm90IGpzb24", "WzEsMiwzXQ", "WyJhIiwgIm5vdC1hLXV1aWQiXQ", "Wy0xXQ" * 100]
)
async def test_a_forged_cursor_is_a_400(api: Api, new_user: NewUser, cursor: str) -> None:
    ann = await new_user()
    room = await create_room(api, ann)
    for path in ("/rooms/public", f"/rooms/{room['id']}/members"):
        reply = await room_call(api, ann, "GET", path, cursor=cursor)
        assert_error(reply, 400)
        assert "cursor" in reply.body["fields"]
