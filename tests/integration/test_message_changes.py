"""Edits, deletions, replies and reactions over REST (docs/ROOM_STATE.md).

Every change must leave exactly one room event with the payload the document gives (the
row the relay publishes to the room's members), and a change that changes nothing must
leave none; each test reads `room_events` as well as the answers and the history.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.helpers.processes import extra_process
from tests.helpers.rest import (
    GLOBAL_ROOM,
    Api,
    Reply,
    User,
    add_to_room,
    assert_error,
    create_room,
    room_call,
    room_events,
    sign_up_and_in,
)
from tests.helpers.stack import ChatStack, require_local

NewUser = Callable[..., Awaitable[User]]
THUMBS = "👍"


@pytest.fixture
def database_url(chat_stack: ChatStack) -> str:
    require_local(chat_stack)
    return chat_stack.database_url


def message_path(room: str, message: str) -> str:
    return f"/rooms/{room}/messages/{message}"


def reaction_path(room: str, message: str, emoji: str) -> str:
    return f"{message_path(room, message)}/reactions/{quote(emoji, safe='')}"


async def posted(api: Api, user: User, room: str, text: str, **extra: Any) -> dict[str, Any]:
    """Post to `room` (201 asserted); the stored message."""
    body = {"id": str(uuid.uuid4()), "text": text, **extra}
    reply = await api.request("POST", f"/rooms/{room}/messages", token=user.token, json=body)
    assert reply.status == 201, (reply.status, reply.text)
    return dict(reply.body)


async def edit(api: Api, user: User, room: str, message: str, text: str) -> Reply:
    return await room_call(api, user, "PATCH", message_path(room, message), json={"text": text})


async def delete(api: Api, user: User, room: str, message: str) -> Reply:
    return await room_call(api, user, "DELETE", message_path(room, message))


async def react(api: Api, user: User, room: str, message: str, emoji: str = THUMBS) -> Reply:
    return await room_call(api, user, "PUT", reaction_path(room, message, emoji))


async def unreact(api: Api, user: User, room: str, message: str, emoji: str = THUMBS) -> Reply:
    return await room_call(api, user, "DELETE", reaction_path(room, message, emoji))


async def history(api: Api, user: User, room: str) -> list[dict[str, Any]]:
    reply = await room_call(api, user, "GET", f"/rooms/{room}/messages")
    assert reply.status == 200, (reply.status, reply.text)
    return list(reply.body)


async def in_history(api: Api, user: User, room: str, message: str) -> dict[str, Any]:
    [found] = [m for m in await history(api, user, room) if m["_id"] == message]
    return found


async def legacy_history(api: Api, user: User) -> list[dict[str, Any]]:
    reply = await api.request("GET", "/messages", token=user.token, params={"limit": "500"})
    assert reply.status == 200, (reply.status, reply.text)
    return list(reply.body)


async def change_events(database_url: str, room: str) -> list[dict[str, Any]]:
    """The room's events about messages (not membership), in order."""
    return [
        e
        for e in await room_events(database_url, room)
        if e["kind"] in ("edited", "deleted", "reaction")
    ]


def refused(reply: Reply, status: int, code: str) -> None:
    assert_error(reply, status)
    assert reply.body["code"] == code, reply.body


# ---- edits -----------------------------------------------------------------------------------


async def test_the_author_edits_sanitized_and_history_shows_the_current_text(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    ann, bo = await new_user(), await new_user()
    room = (await create_room(api, ann, kind="private", members=(bo,)))["id"]
    message = await posted(api, ann, room, "first draft")

    reply = await edit(api, ann, room, message["_id"], "<b>final</b><script>alert(1)</script>")
    assert reply.status == 200, reply.text
    edited = reply.body
    assert edited["text"] == "<b>final</b>"  # sanitized exactly as a post
    assert isinstance(edited["edited"], str) and edited["edited"] >= message["createdAt"]
    assert {k: v for k, v in edited.items() if k not in ("text", "edited")} == {
        k: v for k, v in message.items() if k != "text"
    }
    assert await in_history(api, bo, room, message["_id"]) == edited

    [event] = await change_events(database_url, room)
    assert event["kind"] == "edited"
    assert event["subject"] is None
    assert event["id"] > int(message["_id"])
    assert event["payload"] == {
        "room": room,
        "message": {"_id": message["_id"], "text": "<b>final</b>", "edited": edited["edited"]},
    }

    again = await edit(api, ann, room, message["_id"], "<b>final</b>")
    assert again.status == 200
    assert again.body == edited  # the same text: nothing changed, not even the time
    assert len(await change_events(database_url, room)) == 1

    assert_error(await edit(api, ann, room, message["_id"], "<script>only</script>"), 400)
    assert_error(await edit(api, ann, room, message["_id"], "x" * 5000), 400)
    bad_body = await room_call(api, ann, "PATCH", message_path(room, message["_id"]), json={})
    assert_error(bad_body, 400)
    assert (await in_history(api, ann, room, message["_id"]))["text"] == "<b>final</b>"


async def test_only_the_author_edits_even_an_owner_may_not(api: Api, new_user: NewUser) -> None:
    owner, admin, bo = await new_user(), await new_user(), await new_user()
    room = (await create_room(api, owner, kind="private", members=(bo,)))["id"]
    assert (await add_to_room(api, owner, room, admin, role="admin")).status == 201
    message = await posted(api, bo, room, "mine")
    for other in (owner, admin):
        refused(await edit(api, other, room, message["_id"], "theirs"), 403, "forbidden")
    assert (await in_history(api, bo, room, message["_id"]))["text"] == "mine"


async def test_the_legacy_history_shows_the_current_text_and_no_deleted_message(
    api: Api, new_user: NewUser
) -> None:
    ann = await new_user()
    kept = await posted(api, ann, GLOBAL_ROOM, "to be edited")
    gone = await posted(api, ann, GLOBAL_ROOM, "to be deleted")
    assert (await edit(api, ann, GLOBAL_ROOM, kept["_id"], "edited")).status == 200
    assert (await delete(api, ann, GLOBAL_ROOM, gone["_id"])).status == 204

    legacy = {m["_id"]: m for m in await legacy_history(api, ann)}
    assert gone["_id"] not in legacy
    assert legacy[kept["_id"]] == {
        "_id": kept["_id"],
        "id": kept["id"],
        "owner": ann.id,
        "userName": ann.name,
        "text": "edited",
        "createdAt": kept["createdAt"],
    }  # the legacy shape exactly: no `edited`, no `room`


# ---- deletions -------------------------------------------------------------------------------


async def test_a_deleted_message_is_a_tombstone_that_cannot_change(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    ann, bo = await new_user(), await new_user()
    room = (await create_room(api, ann, members=(bo,)))["id"]
    message = await posted(api, bo, room, "<i>oops</i>")
    assert (await react(api, ann, room, message["_id"])).status == 204
    before = len(await change_events(database_url, room))

    assert (await delete(api, bo, room, message["_id"])).status == 204
    tombstone = await in_history(api, ann, room, message["_id"])
    assert tombstone == {
        "_id": message["_id"],
        "id": message["id"],
        "room": room,
        "owner": bo.id,
        "userName": bo.name,
        "createdAt": message["createdAt"],
        "deleted": True,
        "text": "",
    }  # no text, no reactions
    events = await change_events(database_url, room)
    assert len(events) == before + 1
    assert events[-1]["kind"] == "deleted"
    assert events[-1]["payload"] == {"room": room, "message": message["_id"]}

    assert (await delete(api, bo, room, message["_id"])).status == 204  # again: nothing new
    refused(await edit(api, bo, room, message["_id"], "back"), 409, "deleted")
    refused(await react(api, ann, room, message["_id"]), 409, "deleted")
    refused(await unreact(api, ann, room, message["_id"]), 409, "deleted")
    reply = await post_reply(api, ann, room, message["_id"])
    refused(reply, 409, "deleted")
    assert len(await change_events(database_url, room)) == before + 1
    assert await in_history(api, ann, room, message["_id"]) == tombstone


async def test_owners_and_admins_delete_anyones_messages_members_only_their_own(
    api: Api, new_user: NewUser
) -> None:
    owner, admin, bo, cy = [await new_user() for _ in range(4)]
    room = (await create_room(api, owner, kind="private", members=(bo, cy)))["id"]
    assert (await add_to_room(api, owner, room, admin, role="admin")).status == 201
    by_bo = [await posted(api, bo, room, f"bo {i}") for i in range(3)]

    refused(await delete(api, cy, room, by_bo[0]["_id"]), 403, "forbidden")
    assert (await delete(api, admin, room, by_bo[0]["_id"])).status == 204
    assert (await delete(api, owner, room, by_bo[1]["_id"])).status == 204
    assert (await delete(api, bo, room, by_bo[2]["_id"])).status == 204
    page = await history(api, cy, room)
    assert [m.get("deleted") for m in page] == [True, True, True]


async def test_in_the_global_room_only_the_author_deletes(api: Api, new_user: NewUser) -> None:
    ann, bo = await new_user(), await new_user()
    message = await posted(api, ann, GLOBAL_ROOM, "global")
    refused(await delete(api, bo, GLOBAL_ROOM, message["_id"]), 403, "forbidden")
    assert (await delete(api, ann, GLOBAL_ROOM, message["_id"])).status == 204


async def test_an_archived_room_keeps_its_messages_but_deletion_still_works(
    api: Api, new_user: NewUser
) -> None:
    ann = await new_user()
    room = (await create_room(api, ann))["id"]
    message = await posted(api, ann, room, "archived soon")
    archive = await room_call(api, ann, "PATCH", f"/rooms/{room}", json={"archived": True})
    assert archive.status == 200, archive.text
    refused(await edit(api, ann, room, message["_id"], "changed"), 409, "archived")
    refused(await react(api, ann, room, message["_id"]), 409, "archived")
    assert (await delete(api, ann, room, message["_id"])).status == 204


# ---- who may: the room rules ------------------------------------------------------------------


async def test_non_members_get_404_for_private_rooms_and_403_for_public_ones(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    ann, outsider = await new_user(), await new_user()
    private = (await create_room(api, ann, kind="private"))["id"]
    public = (await create_room(api, ann))["id"]
    secret = await posted(api, ann, private, "secret")
    open_ = await posted(api, ann, public, "open")

    for call in (edit_as_outsider, delete, react, unreact):
        refused(await call(api, outsider, private, secret["_id"]), 404, "not_found")
        refused(await call(api, outsider, public, open_["_id"]), 403, "not_member")
    # A message of another room, or no message at all, through a room one may use: 404.
    for message_id in (secret["_id"], "999999999999", "12abc", "-1", "1" * 19):
        for call in (edit_as_outsider, delete, react):
            refused(await call(api, ann, public, message_id), 404, "not_found")
    refused(await react(api, ann, str(uuid.uuid4()), open_["_id"]), 404, "not_found")
    assert await change_events(database_url, private) == []
    assert await change_events(database_url, public) == []


async def edit_as_outsider(api: Api, user: User, room: str, message: str) -> Reply:
    return await edit(api, user, room, message, "changed")


# ---- replies ---------------------------------------------------------------------------------


async def post_reply(api: Api, user: User, room: str, reply_to: Any) -> Reply:
    body = {"id": str(uuid.uuid4()), "text": "a reply", "replyTo": reply_to}
    return await api.request("POST", f"/rooms/{room}/messages", token=user.token, json=body)


async def test_a_reply_carries_the_quoted_author_and_a_plain_text_excerpt(
    api: Api, new_user: NewUser
) -> None:
    ann, bo = await new_user(), await new_user()
    room = (await create_room(api, ann, kind="private", members=(bo,)))["id"]
    html = "<p>Shall we <b>move</b> the review?</p><p>a &lt; b &amp; " + "x" * 200 + "</p>"
    quoted = await posted(api, ann, room, html)
    answer = await posted(api, bo, room, "<i>Friday</i> works", replyTo=quoted["_id"])
    excerpt = ("Shall we move the review? a < b & " + "x" * 200)[:140]
    preview = {"_id": quoted["_id"], "owner": ann.id, "userName": ann.name, "excerpt": excerpt}
    assert answer["replyTo"] == preview
    assert answer["text"] == "<i>Friday</i> works"
    assert await in_history(api, ann, room, answer["_id"]) == answer

    # A later edit of the quoted message leaves the excerpt as it was when replying.
    assert (await edit(api, ann, room, quoted["_id"], "something else")).status == 200
    assert (await in_history(api, ann, room, answer["_id"]))["replyTo"] == preview
    # Its deletion empties the excerpt: a deleted text survives nowhere.
    assert (await delete(api, ann, room, quoted["_id"])).status == 204
    after = await in_history(api, bo, room, answer["_id"])
    assert after["replyTo"] == {**preview, "excerpt": ""}
    rooms = await room_call(api, bo, "GET", "/rooms")
    [listed] = [r for r in rooms.body["rooms"] if r["id"] == room]
    assert listed["lastMessage"] == after


async def test_a_reply_must_quote_a_message_of_the_same_room(api: Api, new_user: NewUser) -> None:
    ann = await new_user()
    room = (await create_room(api, ann))["id"]
    other = (await create_room(api, ann))["id"]
    elsewhere = await posted(api, ann, other, "elsewhere")
    for target in (elsewhere["_id"], "999999999999"):
        reply = await post_reply(api, ann, room, target)
        assert_error(reply, 422)
        assert set(reply.body["fields"]) == {"replyTo"}
    for malformed in ("abc", 12, "1" * 19, ""):
        assert_error(await post_reply(api, ann, room, malformed), 400)
    assert await history(api, ann, room) == []  # nothing stored


async def test_a_reply_in_the_global_room_keeps_the_legacy_shape_on_legacy_routes(
    api: Api, new_user: NewUser
) -> None:
    ann, bo = await new_user(), await new_user()
    quoted = await posted(api, ann, GLOBAL_ROOM, "hello all")
    answer = await posted(api, bo, GLOBAL_ROOM, "hello you", replyTo=quoted["_id"])
    assert answer["replyTo"]["_id"] == quoted["_id"]
    legacy = {m["_id"]: m for m in await legacy_history(api, bo)}
    assert set(legacy[answer["_id"]]) == {"_id", "id", "owner", "userName", "text", "createdAt"}
    # The legacy POST ignores a `replyTo` as it ignores every unknown field.
    plain = await api.post_message(bo, "plain", replyTo=quoted["_id"])
    assert plain.status == 201
    assert "replyTo" not in plain.body
    assert "replyTo" not in await in_history(api, bo, GLOBAL_ROOM, plain.body["_id"])


# ---- reactions -------------------------------------------------------------------------------


async def test_reactions_aggregate_per_emoji_and_are_idempotent(
    api: Api, new_user: NewUser, database_url: str
) -> None:
    ann, bo, cy = await new_user(), await new_user(), await new_user()
    room = (await create_room(api, ann, members=(bo, cy)))["id"]
    message = await posted(api, ann, room, "react to me")

    assert (await react(api, bo, room, message["_id"])).status == 204
    assert (await react(api, cy, room, message["_id"])).status == 204
    assert (await react(api, cy, room, message["_id"], "🎉")).status == 204
    assert (await react(api, bo, room, message["_id"])).status == 204  # again: no change
    expected = [
        {"emoji": THUMBS, "count": 2, "users": [bo.id, cy.id]},
        {"emoji": "🎉", "count": 1, "users": [cy.id]},
    ]
    assert (await in_history(api, ann, room, message["_id"]))["reactions"] == expected
    events = await change_events(database_url, room)
    assert [e["kind"] for e in events] == ["reaction"] * 3  # the repeat stored nothing
    assert events[-1]["payload"] == {"room": room, "message": message["_id"], "reactions": expected}
    assert events[0]["payload"]["reactions"] == [
        {"emoji": THUMBS, "count": 1, "users": [bo.id]}
    ]  # each event carries the whole aggregate: a replay replaces, never adds

    assert (await unreact(api, bo, room, message["_id"])).status == 204
    assert (await unreact(api, bo, room, message["_id"])).status == 204  # again: no change
    assert (await unreact(api, cy, room, message["_id"], "🎉")).status == 204
    remaining = [{"emoji": THUMBS, "count": 1, "users": [cy.id]}]
    assert (await in_history(api, ann, room, message["_id"]))["reactions"] == remaining
    events = await change_events(database_url, room)
    assert len(events) == 5
    assert events[-1]["payload"]["reactions"] == remaining
    assert (await unreact(api, cy, room, message["_id"])).status == 204
    assert "reactions" not in await in_history(api, ann, room, message["_id"])
    assert (await change_events(database_url, room))[-1]["payload"]["reactions"] == []


async def test_a_reaction_is_exactly_one_emoji(api: Api, new_user: NewUser) -> None:
    ann = await new_user()
    room = (await create_room(api, ann))["id"]
    message = await posted(api, ann, room, "emoji only")
    for emoji in ("❤️", "👍🏽", "🇫🇷", "1️⃣", "🧑‍💻"):
        assert (await react(api, ann, room, message["_id"], emoji)).status == 204, emoji
    for bad in ("a", "👍👍", "🇫", "👍 ", "<b>", "\u200d", "👨‍👩‍👧‍👦", "ok👍"):
        reply = await react(api, ann, room, message["_id"], bad)
        assert_error(reply, 422)
        assert set(reply.body["fields"]) == {"emoji"}, bad
    shown = (await in_history(api, ann, room, message["_id"]))["reactions"]
    assert [r["emoji"] for r in shown] == ["❤️", "👍🏽", "🇫🇷", "1️⃣", "🧑‍💻"]


# ---- limits ----------------------------------------------------------------------------------

LIMITS = {"MAX_REACTIONS_PER_MESSAGE": "2", "RATE_LIMIT_MESSAGE_CHANGES_PER_MINUTE": "6"}


@pytest.fixture(scope="module")
async def small(chat_stack: ChatStack, http: aiohttp.ClientSession) -> AsyncIterator[Api]:
    """A REST client of an API process with the small limits of LIMITS."""
    async with extra_process(
        chat_stack, "services.api_service", LIMITS, "api-change-limits"
    ) as url:
        yield Api(http, url)


async def test_distinct_reactions_and_changes_are_limited(small: Api) -> None:
    ann, bo = await sign_up_and_in(small), await sign_up_and_in(small)
    room = (await create_room(small, ann, members=(bo,)))["id"]
    message = await posted(small, ann, room, "limited")
    assert (await react(small, ann, room, message["_id"], "👍")).status == 204
    assert (await react(small, ann, room, message["_id"], "🎉")).status == 204
    refused(await react(small, ann, room, message["_id"], "❤️"), 409, "too_many_reactions")
    assert (await react(small, bo, room, message["_id"], "🎉")).status == 204  # not a new one
    for text in ("one", "two", "three"):
        assert (await edit(small, ann, room, message["_id"], text)).status == 200
    limited = await edit(small, ann, room, message["_id"], "four")
    refused(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await react(small, bo, room, message["_id"], "👍")).status == 204  # per user
