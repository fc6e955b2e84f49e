"""Room history and posting, and the global room every account is a member of."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from tests.helpers.rest import (
    GLOBAL_ROOM,
    Api,
    User,
    add_to_room,
    assert_error,
    create_room,
    post_to_room,
    room_call,
)

NewUser = Callable[..., Awaitable[User]]


async def test_room_history_pages_like_the_legacy_history(api: Api, new_user: NewUser) -> None:
    ann, bo = await new_user(), await new_user()
    room = await create_room(api, ann, kind="private", members=(bo,))
    rid = room["id"]
    other = await create_room(api, ann)
    posted = []
    for i in range(5):
        reply = await post_to_room(api, ann if i % 2 else bo, rid, f"m{i}")
        assert reply.status == 201, reply.text
        posted.append(reply.body)
        assert (await post_to_room(api, ann, other["id"], f"elsewhere {i}")).status == 201

    path = f"/rooms/{rid}/messages"
    everything = await room_call(api, bo, "GET", path)
    assert everything.status == 200
    assert everything.body == posted  # only this room's, oldest first, with `room`
    assert all(m["room"] == rid for m in everything.body)
    assert set(posted[0]) == {"_id", "id", "room", "owner", "userName", "text", "createdAt"}

    newest = await room_call(api, bo, "GET", path, limit=2)
    assert [m["text"] for m in newest.body] == ["m3", "m4"]
    older = await room_call(api, bo, "GET", path, limit=2, before=newest.body[0]["_id"])
    assert [m["text"] for m in older.body] == ["m1", "m2"]
    after = await room_call(api, bo, "GET", path, limit=2, after=posted[0]["_id"])
    assert [m["text"] for m in after.body] == ["m1", "m2"]
    bad = await room_call(api, bo, "GET", path, limit=0)
    assert_error(bad, 400)


async def test_a_newcomer_reads_the_history_from_before_joining(
    api: Api, new_user: NewUser
) -> None:
    ann, late = await new_user(), await new_user()
    room = await create_room(api, ann, kind="private")
    assert (await post_to_room(api, ann, room["id"], "before you came")).status == 201
    assert (await add_to_room(api, ann, room["id"], late)).status == 201
    history = await room_call(api, late, "GET", f"/rooms/{room['id']}/messages")
    assert [m["text"] for m in history.body] == ["before you came"]


async def test_posting_is_idempotent_per_client_id_and_sanitized(
    api: Api, new_user: NewUser
) -> None:
    ann = await new_user()
    room = await create_room(api, ann)
    client_id = str(uuid.uuid4())
    first = await post_to_room(api, ann, room["id"], "<b>hi</b><script>x</script>", client_id)
    assert first.status == 201, first.text
    assert first.body["text"] == "<b>hi</b>"
    assert first.body["room"] == room["id"]
    assert first.body["owner"] == ann.id
    assert first.body["userName"] == ann.name
    again = await post_to_room(api, ann, room["id"], "<b>hi</b><script>x</script>", client_id)
    assert again.status == 200
    assert again.body == first.body
    history = await room_call(api, ann, "GET", f"/rooms/{room['id']}/messages")
    assert [m["_id"] for m in history.body] == [first.body["_id"]]
    empty = await post_to_room(api, ann, room["id"], "<script>only</script>")
    assert_error(empty, 400)


async def test_posting_needs_membership(api: Api, new_user: NewUser) -> None:
    ann, outsider = await new_user(), await new_user()
    public = await create_room(api, ann)
    private = await create_room(api, ann, kind="private")
    refused = await post_to_room(api, outsider, public["id"], "hi")
    assert_error(refused, 403)
    assert refused.body["code"] == "not_member"
    assert_error(await post_to_room(api, outsider, private["id"], "hi"), 404)
    assert_error(await post_to_room(api, outsider, str(uuid.uuid4()), "hi"), 404)
    assert (await room_call(api, ann, "GET", f"/rooms/{public['id']}/messages")).body == []


async def test_the_global_room_is_everyones_and_fixed(api: Api, new_user: NewUser) -> None:
    ann, bo = await new_user(), await new_user()
    path = f"/rooms/{GLOBAL_ROOM}"
    details = await room_call(api, ann, "GET", path)
    assert details.status == 200
    assert details.body["name"] == "General"
    assert details.body["kind"] == "public"
    assert details.body["role"] == "member"
    mine = await room_call(api, ann, "GET", "/rooms")
    general = mine.body["rooms"][0]
    assert general["id"] == GLOBAL_ROOM
    assert general["memberCount"] == details.body["memberCount"] >= 2

    for method, subpath, body in [
        ("POST", "/leave", None),
        ("PATCH", "", {"name": "Mine"}),
        ("PATCH", "", {"archived": True}),
        ("POST", "/members", {"userId": bo.id}),
        ("DELETE", f"/members/{bo.id}", None),
        ("PATCH", f"/members/{bo.id}", {"role": "admin"}),
        ("POST", "/owner", {"userId": bo.id}),
    ]:
        reply = await room_call(api, ann, method, path + subpath, json=body)
        assert_error(reply, 409)
        assert reply.body["code"] == "global_room", (method, subpath)
    joined = await room_call(api, ann, "POST", f"{path}/join")
    assert joined.status == 200
    assert joined.body["role"] == "member"

    members = await room_call(api, ann, "GET", f"{path}/members", limit=1)
    assert members.status == 200
    assert members.body["members"][0]["role"] == "member"
    assert members.body["next"] is not None


async def test_the_global_room_and_the_legacy_routes_are_one_feed(
    api: Api, new_user: NewUser
) -> None:
    ann = await new_user()
    via_room = await post_to_room(api, ann, GLOBAL_ROOM, "through the room route")
    assert via_room.status == 201
    assert via_room.body["room"] == GLOBAL_ROOM
    legacy = await api.post_message(ann, "through the legacy route")
    assert legacy.status == 201
    assert "room" not in legacy.body  # the legacy shape, unchanged

    history = await room_call(api, ann, "GET", f"/rooms/{GLOBAL_ROOM}/messages", limit=2)
    assert [m["text"] for m in history.body] == [
        "through the room route",
        "through the legacy route",
    ]
    legacy_history = await api.history(ann, after=int(via_room.body["_id"]) - 1)
    texts = [m["text"] for m in legacy_history]
    assert "through the room route" in texts and "through the legacy route" in texts
    assert all("room" not in m for m in legacy_history)


async def test_messages_of_other_rooms_stay_out_of_the_legacy_feed(
    api: Api, new_user: NewUser
) -> None:
    ann = await new_user()
    room = await create_room(api, ann)
    marker = await api.post_message(ann, "global marker")
    posted = await post_to_room(api, ann, room["id"], "room only")
    assert posted.status == 201
    after = await api.history(ann, after=int(marker.body["_id"]))
    assert "room only" not in [m["text"] for m in after]


async def test_a_client_id_used_in_one_room_is_refused_in_another(
    api: Api, new_user: NewUser
) -> None:
    """Not a retry: answering 200 with the other room's message would lose the post."""
    ann = await new_user()
    first = (await create_room(api, ann, kind="private"))["id"]
    second = (await create_room(api, ann, kind="private"))["id"]
    key = str(uuid.uuid4())
    assert (await post_to_room(api, ann, first, "in the first", key)).status == 201
    assert (await post_to_room(api, ann, first, "retry", key)).status == 200  # a real retry

    again = await post_to_room(api, ann, second, "in the second", key)
    assert_error(again, 409)
    assert again.body["code"] == "id_in_use"
    legacy = await api.request(
        "POST", "/messages", token=ann.token, json={"id": key, "text": "in General"}
    )
    assert_error(legacy, 409)
    assert legacy.body["code"] == "id_in_use"
    history = await room_call(api, ann, "GET", f"/rooms/{second}/messages")
    assert history.status == 200 and history.body == []
