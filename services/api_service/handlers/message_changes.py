"""Editing and deleting messages, and reactions (docs/ROOM_STATE.md).

Each change is one transaction, as a membership change is (handlers/rooms.py), but it
takes only its room's lock (posts to the room take it too; membership changes wait for
it), then checks the caller's membership (404 for a
private or direct room they are not in, 403 `not_member` for a public one), their
right to the change and the message's state, changes the rows and stores one room
event (`edited`, `deleted`, `reaction`) that takes the next id of the message order.
The relay publishes the event in order with the messages, so the room's members see
the change live and a client that reconnects with its cursor gets the changes it
missed, after the messages they change.

A request that changes nothing (the same text again, a reaction that is already there
or already gone, a message already deleted) stores no event, so a retry is harmless.
"""

from __future__ import annotations

from aiohttp import web

from services.api_service import validation
from services.api_service.db import message_changes as db
from services.api_service.db import rooms as room_db
from services.api_service.db.pool import DbConnection
from services.api_service.db.room_events import insert_room_event
from services.api_service.db.rooms import ADMIN, OWNER, RoomRow
from services.api_service.errors import Conflict, Forbidden, NotFound
from services.api_service.handlers.common import authenticate, read_body
from services.api_service.handlers.rooms import (
    check_member,
    check_not_archived,
    room_change,
    room_param,
)
from services.api_service.keys import RATE_LIMITS, SETTINGS
from services.shared.auth import Identity
from services.shared.messages import StoredMessage
from services.shared.rooms import DELETED, EDITED, REACTION
from services.shared.web import json_response

MESSAGE_NOT_FOUND = "Message not found"


def message_param(request: web.Request) -> int:
    return validation.path_message_id(request.match_info["message"])


async def limit_changes(request: web.Request, identity: Identity, room_id: str) -> None:
    """Edits, deletions and reactions count per user and room (each one is a room event)."""
    await request.app[RATE_LIMITS].check("message_changes", f"{identity.user_id}:{room_id}")


async def target(
    conn: DbConnection, identity: Identity, room_id: str, message_id: int
) -> tuple[RoomRow, str, StoredMessage]:
    """The room, the caller's role in it and the message; 404/403 as for the room's history."""
    role = await room_db.role_of(conn, room_id, identity.user_id)
    room = check_member(await room_db.room(conn, room_id), role)
    assert role is not None  # check_member: a member
    message = await db.message_in_room(conn, room.id, message_id)
    if message is None:
        raise NotFound(MESSAGE_NOT_FOUND)
    return room, role, message


def check_not_deleted(message: StoredMessage) -> None:
    if message.deleted:
        raise Conflict("The message was deleted", code="deleted")


async def edit_message(request: web.Request) -> web.Response:
    """`PATCH /rooms/{room}/messages/{message}`: the author replaces the text (sanitized)."""
    identity = authenticate(request)
    room_id = room_param(request)
    message_id = message_param(request)
    await limit_changes(request, identity, room_id)
    form = validation.parse_message_edit(
        await read_body(request), request.app[SETTINGS].message_max_chars
    )
    async with room_change(request, room_id) as conn:
        room, _, message = await target(conn, identity, room_id, message_id)
        if message.owner != identity.user_id:
            raise Forbidden("Only its author can edit a message")
        check_not_deleted(message)
        check_not_archived(room)
        if form.text != message.text:
            edited = await db.edit_message(conn, message.id, form.text)
            payload = {
                "room": room.id,
                "message": {
                    "_id": str(message.id),
                    "text": form.text,
                    "edited": edited.isoformat(),
                },
            }
            await insert_room_event(conn, room.id, EDITED, None, payload)
        answer = await db.message_view(conn, message.id)
    return json_response(answer)


async def delete_message(request: web.Request) -> web.Response:
    """`DELETE /rooms/{room}/messages/{message}`: the author, or the room's owner and admins.

    In the global room, which has no owner or admins, only the author. A deleted message
    stays as a tombstone; deleting it again changes nothing (204).
    """
    identity = authenticate(request)
    room_id = room_param(request)
    message_id = message_param(request)
    await limit_changes(request, identity, room_id)
    async with room_change(request, room_id) as conn:
        room, role, message = await target(conn, identity, room_id, message_id)
        moderator = not room.is_global and role in (OWNER, ADMIN)
        if message.owner != identity.user_id and not moderator:
            raise Forbidden("Only its author or the room's owner and admins can delete a message")
        if not message.deleted:
            await db.delete_message(conn, message.id)
            payload = {"room": room.id, "message": str(message.id)}
            await insert_room_event(conn, room.id, DELETED, None, payload)
    return web.Response(status=204)


async def add_reaction(request: web.Request) -> web.Response:
    """`PUT /rooms/{room}/messages/{message}/reactions/{emoji}`: 204, also when already there."""
    return await _react(request, add=True)


async def remove_reaction(request: web.Request) -> web.Response:
    """`DELETE /rooms/{room}/messages/{message}/reactions/{emoji}`: 204, also when not there."""
    return await _react(request, add=False)


async def _react(request: web.Request, *, add: bool) -> web.Response:
    """Add or remove the caller's reaction; members get the message's whole new aggregate."""
    identity = authenticate(request)
    room_id = room_param(request)
    message_id = message_param(request)
    emoji = validation.path_emoji(request.match_info["emoji"])
    await limit_changes(request, identity, room_id)
    async with room_change(request, room_id) as conn:
        room, _, message = await target(conn, identity, room_id, message_id)
        check_not_deleted(message)
        check_not_archived(room)
        if add:
            await check_room_for_emoji(conn, request, message.id, emoji)
            changed = await db.add_reaction(conn, message.id, emoji, identity.user_id)
        else:
            changed = await db.remove_reaction(conn, message.id, emoji, identity.user_id)
        if changed:
            reactions = await db.reactions_of(conn, message.id)
            payload = {"room": room.id, "message": str(message.id), "reactions": reactions}
            await insert_room_event(conn, room.id, REACTION, None, payload)
    return web.Response(status=204)


async def check_room_for_emoji(
    conn: DbConnection, request: web.Request, message_id: int, emoji: str
) -> None:
    """409 `too_many_reactions` when `emoji` would be one distinct emoji too many."""
    limit = request.app[SETTINGS].rooms.max_reactions_per_message
    distinct, present = await db.emoji_in_use(conn, message_id, emoji)
    if not present and distinct >= limit:
        raise Conflict(
            f"The message has {limit} different reactions, the most it may have",
            code="too_many_reactions",
        )
