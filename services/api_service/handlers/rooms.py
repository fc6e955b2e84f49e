"""Rooms, memberships, room history and finding people (docs/ROOMS.md).

Every change is one transaction that takes the message-order lock first, then checks
what it depends on (the caller's role, the limits, the kind of room), then changes the
rows and stores one room event per person concerned (db/room_events.py). The lock,
exclusive, serializes every membership change and waits for the posts in flight (which
hold it shared, besides their rooms' locks), so the checks cannot go stale before the
commit: the limits are exact, a direct room is created once per pair, and a removal
is exactly "nothing of the room after this event" for the relay and the gateways.

Whether a private room exists is itself private: a room id that is not a UUID, a room
that does not exist, and a private or direct room the caller is not in all answer the
same 404. A public room the caller is not in answers 403 `not_member` for what only
members may do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from services.api_service import validation
from services.api_service.db import messages, reads
from services.api_service.db import rooms as db
from services.api_service.db.message_changes import room_page
from services.api_service.db.pool import DbConnection
from services.api_service.db.room_events import (
    insert_room_event,
    lock_message_order,
    lock_rooms,
)
from services.api_service.db.rooms import ADMIN, MEMBER, OWNER, MemberRow, Person, RoomRow
from services.api_service.errors import (
    Conflict,
    Forbidden,
    NotFound,
    NotMember,
    Unauthorized,
    Unprocessable,
)
from services.api_service.handlers.common import (
    authenticate,
    check_same_room,
    limit_by_user,
    read_body,
)
from services.api_service.keys import DB_POOL, MESSAGE_WRITER, RATE_LIMITS, SETTINGS
from services.api_service.models import UNREAD_CAP, mention_text
from services.shared.auth import Identity
from services.shared.rooms import JOINED, LEFT, ROLE, UPDATED
from services.shared.web import json_response

ACCOUNT_GONE = "Unauthorized: user no longer exists"
ROOM_NOT_FOUND = "Room not found"
NO_SUCH_USER = "no such user"


# ---- the rules ------------------------------------------------------------------------------


def hidden(room: RoomRow | None, role: str | None) -> bool:
    """True when the caller may not know that the room exists."""
    return room is None or (room.kind != "public" and role is None)


def check_visible(room: RoomRow | None, role: str | None) -> RoomRow:
    if room is None or hidden(room, role):
        raise NotFound(ROOM_NOT_FOUND)
    return room


def check_member(room: RoomRow | None, role: str | None) -> RoomRow:
    """The room, when the caller is a member; else 404 (hidden) or 403 `not_member` (public)."""
    room = check_visible(room, role)
    if role is None:
        raise NotMember("You are not a member of this room")
    return room


def check_changeable_membership(room: RoomRow) -> None:
    """The global room and direct rooms have fixed members."""
    if room.is_global:
        raise Conflict(
            "Everyone is a member of the global room: it cannot be joined, left or changed",
            code="global_room",
        )
    if room.kind == "direct":
        raise Conflict(
            "A direct room has exactly its two people: it cannot be joined, left or changed",
            code="direct_room",
        )


def check_role(role: str | None, allowed: tuple[str, ...], action: str) -> None:
    if role not in allowed:
        raise Forbidden(f"Your role in this room does not allow you to {action}")


def check_not_archived(room: RoomRow) -> None:
    if room.archived:
        raise Conflict("The room is archived", code="archived")


async def check_room_has_space(
    conn: DbConnection, request: web.Request, room: RoomRow, n: int
) -> int:
    """The member count once `n` more join, or 409 `room_full`."""
    limit = request.app[SETTINGS].rooms.max_members_per_room
    count = await db.member_count(conn, room.id) + n
    if count > limit:
        raise Conflict(f"The room is full ({limit} members at most)", code="room_full")
    return count


async def check_room_allowance(
    conn: DbConnection, request: web.Request, joining: list[Person]
) -> None:
    """409 `too_many_rooms` when one of `joining` is in as many rooms as allowed."""
    limit = request.app[SETTINGS].rooms.max_rooms_per_user
    counts = await db.room_counts(conn, [p.id for p in joining])
    full = [p for p in joining if counts.get(p.id, 0) >= limit]
    if full:
        who = ", ".join(p.name for p in full)
        raise Conflict(
            f"Already in {limit} rooms, the most one may be in: {who}", code="too_many_rooms"
        )


# ---- the events -----------------------------------------------------------------------------


async def joined(
    conn: DbConnection, room: RoomRow, member: MemberRow, member_count: int, peer: Person | None
) -> None:
    """The `joined` event: the room as the added person sees it, with their role."""
    payload = {
        "room": db.room_wire(
            room, role=member.role, member_count=member_count, peer=peer, last_message=None
        ),
        "user": Person(member.id, member.name).wire(),
        "role": member.role,
    }
    await insert_room_event(conn, room.id, JOINED, member.id, payload)


async def left(conn: DbConnection, room: RoomRow, person: Person, reason: str) -> None:
    payload = {"room": room.id, "user": person.wire(), "reason": reason}
    await insert_room_event(conn, room.id, LEFT, person.id, payload)


async def role_changed(conn: DbConnection, room: RoomRow, person: Person, role: str) -> None:
    payload = {"room": room.id, "user": person.wire(), "role": role}
    await insert_room_event(conn, room.id, ROLE, person.id, payload)


# ---- plumbing -------------------------------------------------------------------------------


@asynccontextmanager
async def change(request: web.Request) -> AsyncIterator[DbConnection]:
    """A transaction holding the message-order lock, for one membership change or update."""
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        await lock_message_order(conn)
        yield conn


@asynccontextmanager
async def room_change(request: web.Request, room_id: str) -> AsyncIterator[DbConnection]:
    """A transaction holding one room's lock, for a change of its messages.

    Changes in other rooms and posts to them go on meanwhile; membership changes wait.
    """
    async with request.app[DB_POOL].acquire() as conn, conn.transaction():
        await lock_rooms(conn, [room_id])
        yield conn


async def me(conn: DbConnection, identity: Identity) -> Person:
    """The caller's account, or 401 when it was deleted since the token was issued."""
    found = (await db.people(conn, [identity.user_id])).get(identity.user_id)
    if found is None:
        raise Unauthorized(ACCOUNT_GONE)
    return found


async def limit_room_posts(request: web.Request, identity: Identity, room_id: str) -> None:
    key = f"{identity.user_id}:{room_id}"
    await request.app[RATE_LIMITS].check("room_posts", key)


def room_param(request: web.Request) -> str:
    return validation.path_uuid(request.match_info["room"])


def user_param(request: web.Request) -> str:
    return validation.path_uuid(request.match_info["user"], "Member")


async def view(request: web.Request, room_id: str, viewer: str, status: int = 200) -> web.Response:
    """The room as `viewer` sees it now (after the change's commit)."""
    async with request.app[DB_POOL].acquire() as conn:
        found = await db.room_view(conn, room_id, viewer)
    assert found is not None  # rooms are never deleted
    return json_response(found.wire(), status=status)


def member_reply(member: MemberRow, status: int) -> web.Response:
    return json_response({"member": member.wire()}, status=status)


# ---- reading --------------------------------------------------------------------------------


async def list_my_rooms(request: web.Request) -> web.Response:
    """`GET /rooms`: the global room first, then the caller's rooms by newest activity.

    Each with the caller's read state: marker, unread count and mentions (db/reads.py).
    """
    identity = authenticate(request)
    await limit_by_user(request, "room_reads", identity)
    async with request.app[DB_POOL].acquire() as conn:
        caller = await me(conn, identity)
        found = await db.my_rooms(conn, identity.user_id)
        states = await reads.read_states(
            conn,
            identity.user_id,
            [view.room.id for view in found],
            mention_text(caller.name),
            UNREAD_CAP,
        )
    return json_response(
        {
            "rooms": [
                {**view.wire(), **states.get(view.room.id, reads.NOTHING_READ).wire()}
                for view in found
            ]
        }
    )


async def list_public_rooms(request: web.Request) -> web.Response:
    identity = authenticate(request)
    await limit_by_user(request, "room_reads", identity)
    query = validation.parse_public_rooms_query(request.query)
    after = None
    if query.cursor is not None:
        name, room_id = validation.decode_cursor(query.cursor, (str, str))
        after = (name, validation.cursor_uuid(room_id))
    async with request.app[DB_POOL].acquire() as conn:
        page, last = await db.public_rooms(
            conn, identity.user_id, contains=query.q or None, limit=query.limit, after=after
        )
    return json_response(
        {
            "rooms": [room.wire(with_last_message=False) for room in page],
            "next": None if last is None else validation.encode_cursor(list(last)),
        }
    )


async def room_details(request: web.Request) -> web.Response:
    identity = authenticate(request)
    room_id = room_param(request)
    async with request.app[DB_POOL].acquire() as conn:
        found = await db.room_view(conn, room_id, identity.user_id)
    if found is None or hidden(found.room, found.role):
        raise NotFound(ROOM_NOT_FOUND)
    # A public room's newest message is for its members only, like its history.
    return json_response(found.wire(with_last_message=found.role is not None))


def member_page_query(request: web.Request) -> tuple[int, tuple[int, str, str] | None]:
    """`limit` and the decoded `cursor` of a page of members (members, presence)."""
    query = validation.parse_page_query(request.query)
    if query.cursor is None:
        return query.limit, None
    rank, name, user_id = validation.decode_cursor(query.cursor, (int, str, str))
    return query.limit, (rank, name, validation.cursor_uuid(user_id))


async def list_members(request: web.Request) -> web.Response:
    identity = authenticate(request)
    await limit_by_user(request, "room_reads", identity)
    room_id = room_param(request)
    limit, after = member_page_query(request)
    async with request.app[DB_POOL].acquire() as conn:
        check_member(
            await db.room(conn, room_id), await db.role_of(conn, room_id, identity.user_id)
        )
        page, last = await db.member_page(conn, room_id, limit=limit, after=after)
    return json_response(
        {
            "members": [member.wire() for member in page],
            "next": None if last is None else validation.encode_cursor(list(last)),
        }
    )


async def find_people(request: web.Request) -> web.Response:
    """`GET /users?email=` or `?name=`: id and name only, never an email."""
    identity = authenticate(request)
    await limit_by_user(request, "user_search", identity)
    query = validation.parse_user_search(request.query)
    async with request.app[DB_POOL].acquire() as conn:
        found = await db.find_people(
            conn, email=query.email, name_prefix=query.name, limit=query.limit
        )
    return json_response({"users": [person.wire() for person in found]})


# ---- creating -------------------------------------------------------------------------------


async def create_room(request: web.Request) -> web.Response:
    """`POST /rooms`: the caller is the owner; the initial members join with it."""
    identity = authenticate(request)
    settings = request.app[SETTINGS]
    await limit_by_user(request, "rooms_created", identity)
    form = validation.parse_new_room(
        await read_body(request), settings.rooms.name_max_chars, settings.rooms.topic_max_chars
    )
    invited = list(dict.fromkeys(str(m) for m in form.members if str(m) != identity.user_id))
    if 1 + len(invited) > settings.rooms.max_members_per_room:
        raise Conflict(
            f"The room is full ({settings.rooms.max_members_per_room} members at most)",
            code="room_full",
        )
    if invited:
        await limit_by_user(request, "invites", identity, cost=len(invited))
    async with change(request) as conn:
        owner = await me(conn, identity)
        found = await db.people(conn, invited)
        missing = [user_id for user_id in invited if user_id not in found]
        if missing:
            problem = f"{NO_SUCH_USER}: {', '.join(missing)}"
            raise Unprocessable(f"invalid members ({problem})", fields={"members": problem})
        everyone = [owner, *(found[user_id] for user_id in invited)]
        await check_room_allowance(conn, request, everyone)
        room = await db.create_room(conn, form.kind, form.name, form.topic, owner.id)
        assert room is not None  # only direct rooms have a key that may exist
        added = []
        for person, role in zip(everyone, [OWNER] + [MEMBER] * len(invited), strict=True):
            member = await db.add_member(conn, room.id, person.id, role)
            assert member is not None  # a new room has no members yet
            added.append(member)
        for member in added:
            await joined(conn, room, member, len(added), None)
    return await view(request, room.id, identity.user_id, status=201)


async def open_direct_room(request: web.Request) -> web.Response:
    """`POST /rooms/direct`: the room of the caller and `userId`, created the first time."""
    identity = authenticate(request)
    other = validation.parse_user_ref(await read_body(request))
    if other == identity.user_id:
        problem = "must be someone else"
        raise Unprocessable(f"invalid input (userId: {problem})", fields={"userId": problem})
    key = db.direct_key(identity.user_id, other)
    async with request.app[DB_POOL].acquire() as conn:
        existing = await db.room_by_direct_key(conn, key)
    if existing is not None:  # the usual case: no rate limit, no lock
        return await view(request, existing.id, identity.user_id)
    await limit_by_user(request, "rooms_created", identity)
    async with change(request) as conn:
        # Read again under the lock: a concurrent request that created it has committed.
        existing = await db.room_by_direct_key(conn, key)
        if existing is None:
            created = await create_direct_room(conn, request, identity, other, key)
    if existing is not None:
        return await view(request, existing.id, identity.user_id)
    return await view(request, created.id, identity.user_id, status=201)


async def create_direct_room(
    conn: DbConnection, request: web.Request, identity: Identity, other: str, key: str
) -> RoomRow:
    """The two people join the new room, each seeing the other as its `peer`."""
    caller = await me(conn, identity)
    peer = (await db.people(conn, [other])).get(other)
    if peer is None:
        raise Unprocessable(
            f"invalid input (userId: {NO_SUCH_USER})", fields={"userId": NO_SUCH_USER}
        )
    await check_room_allowance(conn, request, [caller, peer])
    room = await db.create_room(conn, "direct", "", "", caller.id, key)
    assert room is not None  # no room has this key: checked under the lock
    for person, their_peer in ((caller, peer), (peer, caller)):
        member = await db.add_member(conn, room.id, person.id, MEMBER)
        assert member is not None
        await joined(conn, room, member, 2, their_peer)
    return room


# ---- changing -------------------------------------------------------------------------------


async def update_room(request: web.Request) -> web.Response:
    """`PATCH /rooms/{room}`: name, topic and receipts (owner, admin), archived (owner)."""
    identity = authenticate(request)
    room_id = room_param(request)
    settings = request.app[SETTINGS]
    form = validation.parse_room_changes(
        await read_body(request), settings.rooms.name_max_chars, settings.rooms.topic_max_chars
    )
    async with change(request) as conn:
        role = await db.role_of(conn, room_id, identity.user_id)
        room = check_visible(await db.room(conn, room_id), role)
        check_changeable_membership(room)
        check_member(room, role)
        if form.name is not None or form.topic is not None:
            check_role(role, (OWNER, ADMIN), "rename the room or set its topic")
        if form.archived is not None:
            check_role(role, (OWNER,), "archive or unarchive the room")
        if form.receipts is not None:
            check_role(role, (OWNER, ADMIN), "turn read receipts on or off")
        name = room.name if form.name is None else form.name
        topic = room.topic if form.topic is None else form.topic
        archived = room.archived if form.archived is None else form.archived
        receipts = room.receipts if form.receipts is None else form.receipts
        new = (name, topic, archived, receipts)
        if new != (room.name, room.topic, room.archived, room.receipts):
            room = await db.update_room(conn, room.id, *new)
            await insert_room_event(conn, room.id, UPDATED, None, {"room": room.summary()})
    return await view(request, room_id, identity.user_id)


async def join_room(request: web.Request) -> web.Response:
    """`POST /rooms/{room}/join`: a public room; a member already gets 200 and nothing changes."""
    identity = authenticate(request)
    room_id = room_param(request)
    async with change(request) as conn:
        role = await db.role_of(conn, room_id, identity.user_id)
        room = check_visible(await db.room(conn, room_id), role)
        if role is None:
            check_not_archived(room)
            count = await check_room_has_space(conn, request, room, 1)
            caller = await me(conn, identity)
            await check_room_allowance(conn, request, [caller])
            member = await db.add_member(conn, room.id, caller.id, MEMBER)
            assert member is not None  # not a member, under the lock
            await joined(conn, room, member, count, None)
    return await view(request, room_id, identity.user_id)


async def leave_room(request: web.Request) -> web.Response:
    """`POST /rooms/{room}/leave`: 204; an owner transfers ownership first."""
    identity = authenticate(request)
    room_id = room_param(request)
    async with change(request) as conn:
        role = await db.role_of(conn, room_id, identity.user_id)
        room = check_visible(await db.room(conn, room_id), role)
        check_changeable_membership(room)
        if role is not None:
            await leave(conn, room, role, await me(conn, identity))
    return web.Response(status=204)


async def leave(conn: DbConnection, room: RoomRow, role: str, person: Person) -> None:
    if role == OWNER:
        raise Conflict(
            "The owner cannot leave: transfer ownership first (POST /rooms/{room}/owner)",
            code="owner_must_transfer",
        )
    await db.remove_member(conn, room.id, person.id)
    await left(conn, room, person, "left")


async def add_member(request: web.Request) -> web.Response:
    """`POST /rooms/{room}/members`: 201 added; 200 when already a member (nothing changes)."""
    identity = authenticate(request)
    room_id = room_param(request)
    form = validation.parse_new_member(await read_body(request))
    await limit_by_user(request, "invites", identity)
    user_id = str(form.userId)
    async with change(request) as conn:
        role = await db.role_of(conn, room_id, identity.user_id)
        room = check_visible(await db.room(conn, room_id), role)
        check_changeable_membership(room)
        check_member(room, role)
        if room.kind == "private":
            check_role(role, (OWNER, ADMIN), "add members to this private room")
        if form.role == ADMIN:
            check_role(role, (OWNER,), "make admins")
        existing = await db.member(conn, room.id, user_id)
        if existing is not None:
            return member_reply(existing, 200)
        person = (await db.people(conn, [user_id])).get(user_id)
        if person is None:
            raise Unprocessable(
                f"invalid input (userId: {NO_SUCH_USER})", fields={"userId": NO_SUCH_USER}
            )
        check_not_archived(room)
        count = await check_room_has_space(conn, request, room, 1)
        await check_room_allowance(conn, request, [person])
        member = await db.add_member(conn, room.id, person.id, form.role)
        assert member is not None  # not a member, under the lock
        await joined(conn, room, member, count, None)
    return member_reply(member, 201)


async def change_member_role(request: web.Request) -> web.Response:
    """`PATCH /rooms/{room}/members/{user}`: the owner makes a member admin, or back."""
    identity = authenticate(request)
    room_id = room_param(request)
    user_id = user_param(request)
    new_role = validation.parse_role_change(await read_body(request))
    async with change(request) as conn:
        role = await db.role_of(conn, room_id, identity.user_id)
        room = check_visible(await db.room(conn, room_id), role)
        check_changeable_membership(room)
        check_member(room, role)
        check_role(role, (OWNER,), "change roles")
        target = await db.member(conn, room.id, user_id)
        if target is None:
            raise NotFound("Member not found")
        if target.role == OWNER:
            raise Conflict(
                "The owner's role changes only by transferring ownership", code="owner_role"
            )
        if target.role != new_role:
            await db.set_role(conn, room.id, target.id, new_role)
            await role_changed(conn, room, Person(target.id, target.name), new_role)
            target = MemberRow(target.id, target.name, new_role, target.joined_at)
    return member_reply(target, 200)


async def remove_member(request: web.Request) -> web.Response:
    """`DELETE /rooms/{room}/members/{user}`: 204; removing oneself is leaving."""
    identity = authenticate(request)
    room_id = room_param(request)
    user_id = user_param(request)
    async with change(request) as conn:
        role = await db.role_of(conn, room_id, identity.user_id)
        room = check_visible(await db.room(conn, room_id), role)
        check_changeable_membership(room)
        check_member(room, role)
        assert role is not None
        if user_id == identity.user_id:
            await leave(conn, room, role, await me(conn, identity))
            return web.Response(status=204)
        check_role(role, (OWNER, ADMIN), "remove members")
        target = await db.member(conn, room.id, user_id)
        if target is None:
            raise NotFound("Member not found")
        if target.role == OWNER:
            raise Forbidden("The owner cannot be removed")
        if target.role == ADMIN:
            check_role(role, (OWNER,), "remove an admin")
        await db.remove_member(conn, room.id, target.id)
        await left(conn, room, Person(target.id, target.name), "removed")
    return web.Response(status=204)


async def transfer_ownership(request: web.Request) -> web.Response:
    """`POST /rooms/{room}/owner`: the new owner must be a member; the old one becomes admin."""
    identity = authenticate(request)
    room_id = room_param(request)
    user_id = validation.parse_user_ref(await read_body(request))
    async with change(request) as conn:
        role = await db.role_of(conn, room_id, identity.user_id)
        room = check_visible(await db.room(conn, room_id), role)
        check_changeable_membership(room)
        check_member(room, role)
        check_role(role, (OWNER,), "transfer ownership")
        if user_id != identity.user_id:
            target = await db.member(conn, room.id, user_id)
            if target is None:
                problem = "must be a member of the room"
                raise Unprocessable(
                    f"invalid input (userId: {problem})", fields={"userId": problem}
                )
            caller = await me(conn, identity)
            await db.set_role(conn, room.id, target.id, OWNER)
            await db.set_role(conn, room.id, caller.id, ADMIN)
            await role_changed(conn, room, Person(target.id, target.name), OWNER)
            await role_changed(conn, room, caller, ADMIN)
    return await view(request, room_id, identity.user_id)


# ---- history and posting --------------------------------------------------------------------


async def room_history(request: web.Request) -> web.Response:
    """`GET /rooms/{room}/messages`: a page of the room's history, paged as `GET /messages`.

    Each message as it is now: edited, deleted (a tombstone), with its reply preview and
    reactions (docs/ROOM_STATE.md).
    """
    identity = authenticate(request)
    room_id = room_param(request)
    settings = request.app[SETTINGS]
    query = validation.parse_history_query(
        request.query, settings.history_default_limit, settings.history_max_limit
    )
    await limit_by_user(request, "history", identity, cost=query.limit)
    async with request.app[DB_POOL].acquire() as conn:
        role = await db.role_of(conn, room_id, identity.user_id)
        check_member(await db.room(conn, room_id), role)
        page = await room_page(
            conn, room_id, limit=query.limit, before=query.before, after=query.after
        )
    return json_response(page)


async def post_room_message(request: web.Request) -> web.Response:
    """`POST /rooms/{room}/messages`: as `POST /messages`, idempotent per client `id`.

    The store function checks membership (and the message a reply answers) under the
    room's lock and the order lock shared, so a post either precedes a removal (or
    deletion) or is refused.
    """
    identity = authenticate(request)
    room_id = room_param(request)
    await limit_by_user(request, "messages", identity)
    await limit_room_posts(request, identity, room_id)
    form = validation.parse_room_message(
        await read_body(request), request.app[SETTINGS].message_max_chars
    )
    new = messages.NewMessage(
        client_id=str(form.id),
        owner=identity.user_id,
        user_name=identity.name,
        text=form.text,
        room=room_id,
        reply_to=None if form.replyTo is None else int(form.replyTo),
    )
    try:
        result = await request.app[MESSAGE_WRITER].insert(new)
    except messages.OwnerMissing:
        raise Unauthorized(ACCOUNT_GONE) from None
    except messages.RoomArchived:
        raise Conflict("The room is archived", code="archived") from None
    except messages.ReplyNotFound:
        problem = "must be the _id of a message of this room"
        raise Unprocessable(
            f"invalid input (replyTo: {problem})", fields={"replyTo": problem}
        ) from None
    except messages.ReplyDeleted:
        raise Conflict("The message it replies to was deleted", code="deleted") from None
    except messages.NotMember:
        async with request.app[DB_POOL].acquire() as conn:
            room = await db.room(conn, room_id)
        check_member(room, None)  # 404, or 403 `not_member` for a public room
        raise NotFound(ROOM_NOT_FOUND) from None
    check_same_room(result, room_id)
    return json_response(result.message.to_room_wire(), status=201 if result.created else 200)
